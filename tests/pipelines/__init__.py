"""The ZenML store: pipeline runs (each pipeline once per session, shared through session fixtures) and
what reads or writes the store (stack import, secrets, materializers) (pytest -m pipelines)."""
