"""Deployment: the model deployers, the local BentoML service daemon, the deployment pipeline's logic, the
service in the foreground, rollout control and batch scoring to files."""
