"""Processes that serve: the model service (BentoML, uvicorn), the browser, the deployment pipeline's
services, the kubernetes dry runs and the servers stack (pytest -m services)."""
