"""Serving the packaged ONNX model over HTTP: request validation, the ASGI app, the inference log."""
