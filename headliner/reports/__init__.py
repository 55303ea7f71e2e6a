"""Report artifacts: pydantic models that render themselves as static HTML for the ZenML dashboard."""
