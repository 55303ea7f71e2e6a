"""MLflow tracking of training: each candidate as a nested run (params, validation metrics, tags, the
fitted pipeline in MLflow's sklearn flavor with a signature of its answers: class probabilities, or the
forecast [N, 1]), the evaluation on the parent run (test metrics beside the baseline's, the task and what
the baseline is). Writes to whatever tracking URI the stack's experiment tracker has set."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from headliner.model.estimators import feature_frame
from headliner.model.evaluation import EvaluationReport
from headliner.model.training import TrainedCandidate, model_output
from headliner.spec import PROJECT_ROOT, UseCaseSpec

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

TRUSTED_TYPE_PREFIXES = ("numpy.", "sklearn.")


def git_commit() -> str:
    """The checked-out commit of the project ('unknown' outside a git checkout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _pip_requirements() -> list[str]:
    """Stated explicitly: MLflow's own inference of them takes seconds per model."""
    import mlflow
    import sklearn
    import skops

    return [f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}", f"mlflow=={mlflow.__version__}"]


def _trusted_types(model: Pipeline) -> list[str]:
    """The types skops will not load by default, trusted only when they are numpy's or scikit-learn's."""
    import skops.io

    untrusted: list[str] = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES)]
    if foreign:
        raise ValueError(f"refusing to trust non-scikit-learn types when logging the model: {foreign}")
    return untrusted


def log_candidate(
    spec: UseCaseSpec, trained: TrainedCandidate, validation: pd.DataFrame, tags: Mapping[str, str]
) -> str:
    """One nested MLflow run for a candidate; returns its run id."""
    import mlflow
    from mlflow.models import infer_signature

    sample = feature_frame(validation.head(5), spec)
    answers = model_output(trained.pipeline, sample, spec)
    answers = answers.reshape(len(sample), -1)  # a forecast as one column, as the ONNX output
    with mlflow.start_run(run_name=trained.config.name, nested=True) as run:
        mlflow.set_tags({**tags, "candidate": trained.config.name, "family": trained.config.family})
        mlflow.log_params({"family": trained.config.family, **trained.config.params})
        mlflow.log_metrics({f"validation_{k}": v for k, v in trained.validation_metrics.items()})
        mlflow.log_metric("fit_seconds", trained.fit_seconds)
        mlflow.sklearn.log_model(
            trained.pipeline,
            name="model",
            signature=infer_signature(sample, answers),
            input_example=sample.head(3),
            skops_trusted_types=_trusted_types(trained.pipeline),
            pip_requirements=_pip_requirements(),
        )
        run_id: str = run.info.run_id
        return run_id


def evaluation_tags(report: EvaluationReport) -> dict[str, str]:
    """What the parent run says of an evaluation besides its metrics: the candidate, the task, what the
    baseline is and, for regression, the target's unit."""
    tags = {"selected_candidate": report.candidate, "task": str(report.task), "baseline": report.baseline_description}
    if report.target_unit:
        tags["target_unit"] = report.target_unit
    return tags


def log_evaluation(report: EvaluationReport) -> None:
    """Test metrics, baseline metrics, the evaluation's tags and its figures (the confusion matrix, or the
    forecast-against-truth plots) on the active (parent) run."""
    import io

    import mlflow
    from PIL import Image

    mlflow.log_metrics({f"test_{k}": v for k, v in report.metrics.items()})
    mlflow.log_metrics({f"baseline_{k}": v for k, v in report.baseline_metrics.items()})
    mlflow.set_tags(evaluation_tags(report))
    for stem, png in report.png_images().items():
        mlflow.log_image(Image.open(io.BytesIO(png)), f"{stem}.png")
    mlflow.log_text(report.model_dump_json(indent=2), "evaluation_report.json")
