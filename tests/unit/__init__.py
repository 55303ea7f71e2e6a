"""Pure functions: no pipeline run, no ZenML store, no server process (pytest -m unit)."""
