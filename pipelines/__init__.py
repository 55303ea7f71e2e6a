"""ZenML pipelines: each wires steps and holds no logic."""
