"""Containers built and run with podman: the service image (built from the local base image, a small model
baked in) answering over its published port, and the containers stack (pytest -m containers)."""
