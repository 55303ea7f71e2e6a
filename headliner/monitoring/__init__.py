"""Monitoring: drift, data quality, fairness and live performance of a served model."""
