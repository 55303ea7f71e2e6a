"""Model engineering steps: train and select, evaluate, gate, package as ONNX, explain, register."""

from steps.training.check_quality_gates import check_quality_gates
from steps.training.evaluate_model import evaluate_model
from steps.training.explain_model import explain_model
from steps.training.package_model import package_model
from steps.training.register_model import register_model
from steps.training.train_model import train_model

__all__ = ["check_quality_gates", "evaluate_model", "explain_model", "package_model", "register_model", "train_model"]
