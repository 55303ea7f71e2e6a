"""Headliner on the `containers` stack: podman's Docker-API socket and the project's model deployer flavor that
serves a model version as a container."""
