"""Packaging the selected model: one ONNX file with its provenance in the metadata, refused unless it
reproduces the scikit-learn probabilities (or a regressor's predictions) on the test split."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import onnx
import pandas as pd
from sklearn.pipeline import Pipeline

from headliner.data.splitting import dataframe_fingerprint
from headliner.model.evaluation import EvaluationReport
from headliner.model.onnx_packaging import check_parity, explanation_background, package_onnx
from headliner.model.tracking import git_commit
from headliner.spec import UseCaseSpec


def provenance_metadata(
    spec: UseCaseSpec, report: EvaluationReport, train: pd.DataFrame, zenml_run_id: str
) -> dict[str, str]:
    return {
        "question": spec.decision.question,
        "candidate": report.candidate,
        "class_names": json.dumps(report.class_names),
        "metrics": json.dumps(report.metrics),
        "baseline_metrics": json.dumps(report.baseline_metrics),
        "baseline_description": report.baseline_description,
        "data_fingerprint": dataframe_fingerprint(train),
        "train_rows": str(len(train)),
        "git_commit": git_commit(),
        "zenml_run_id": zenml_run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def package_checked(
    spec: UseCaseSpec,
    pipeline: Pipeline,
    report: EvaluationReport,
    train: pd.DataFrame,
    test: pd.DataFrame,
    model_version: str,
    zenml_run_id: str,
) -> tuple[onnx.ModelProto, float]:
    """The ONNX model and its parity figure on the test split (`check_parity`: a classifier's max abs
    probability difference, a regressor's max relative prediction difference). The file carries a
    sample of training rows as the background of local explanations (`explanation_background`)."""
    metadata = {**provenance_metadata(spec, report, train, zenml_run_id), **explanation_background(train, spec)}
    model = package_onnx(pipeline, spec, model_version, metadata)
    return model, check_parity(model, pipeline, test, spec)


def parity_key(spec: UseCaseSpec) -> str:
    """The name of the parity figure in the ONNX artifact's run metadata: what it measures."""
    return "parity_max_abs_diff" if spec.is_classification else "parity_max_relative_diff"
