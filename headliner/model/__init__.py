"""Model engineering: training, evaluation, quality gates, ONNX packaging, tracking and registration."""
