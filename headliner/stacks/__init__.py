"""Stacks: setting up the ZenML stack a command needs, the servers of the `servers` stack, and the
Kubernetes flavor and manifests."""
