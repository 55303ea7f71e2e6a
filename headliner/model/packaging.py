"""Packaging the selected model: one ONNX file with its provenance in the metadata, refused unless it
reproduces the scikit-learn probabilities on the test split."""

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
    """The ONNX model and its measured max abs probability difference on the test split. The file carries
    a sample of training rows as the background of local explanations (`explanation_background`)."""
    metadata = {**provenance_metadata(spec, report, train, zenml_run_id), **explanation_background(train, spec)}
    model = package_onnx(pipeline, spec, model_version, metadata)
    return model, check_parity(model, pipeline, test, spec)
