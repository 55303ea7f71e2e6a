"""The test suite in three tiers (unit, pipelines, services; see conftest.py) and the helpers they share."""
