"""Deployment steps: build the bento, deploy the service, smoke-test it; batch scoring; the rollout report."""

from steps.deployment.build_bento import build_bento
from steps.deployment.deploy_service import deploy_service
from steps.deployment.report_rollout import report_rollout
from steps.deployment.score_batch import score_batch
from steps.deployment.smoke_test_service import smoke_test_service

__all__ = ["build_bento", "deploy_service", "report_rollout", "score_batch", "smoke_test_service"]
