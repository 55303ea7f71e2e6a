"""Governance steps: a model version's stage and promotion history as a dashboard artifact."""

from steps.governance.record_model_stage import record_model_stage

__all__ = ["record_model_stage"]
