"""Governance: four-eyes promotion of model versions through the stages, and its audit trail."""
