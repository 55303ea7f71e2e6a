"""ZenML steps, one folder per ML-canvas stage; each step is a thin typed wrapper over headliner."""
