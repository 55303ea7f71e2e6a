"""Monitoring steps: the window and the reference, drift, data quality, fairness, live performance and
its label-free estimate, the decision and its alert, the figures on /metrics and in the Evidently workspace."""

from steps.monitoring.check_data_quality import check_data_quality
from steps.monitoring.check_fairness import check_fairness
from steps.monitoring.check_feature_drift import check_feature_drift
from steps.monitoring.check_prediction_drift import check_prediction_drift
from steps.monitoring.decide_action import decide_action
from steps.monitoring.estimate_performance import estimate_performance
from steps.monitoring.evaluate_live_performance import evaluate_live_performance
from steps.monitoring.load_inference_window import load_inference_window
from steps.monitoring.publish_figures import publish_figures
from steps.monitoring.record_in_workspace import record_in_workspace
from steps.monitoring.score_reference import score_reference
from steps.monitoring.send_alert import send_alert

__all__ = [
    "check_data_quality",
    "check_fairness",
    "check_feature_drift",
    "check_prediction_drift",
    "decide_action",
    "estimate_performance",
    "evaluate_live_performance",
    "load_inference_window",
    "publish_figures",
    "record_in_workspace",
    "score_reference",
    "send_alert",
]
