"""The dashboards a person reads, in Chromium against the real servers: every visualization the ZenML server
serves for every run of the session, and the MLflow UI's registry pages; runs after the other tiers
(pytest -m dashboards)."""
