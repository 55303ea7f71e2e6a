"""Deployment: the model deployers, the local BentoML service daemon, the deployment pipeline's logic, the
service in the foreground, rollout control, batch scoring to files, and the service image (its name and its
podman build)."""
