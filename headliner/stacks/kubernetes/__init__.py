"""Headliner on Kubernetes: the project's model deployer flavor and the manifests it applies."""
