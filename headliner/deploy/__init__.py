"""Deployment: the model deployers, the local BentoML service daemon, the deployment pipeline's logic and
batch scoring to files."""
