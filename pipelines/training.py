"""The training pipeline: data engineering -> train and select -> evaluate -> quality gates ->
ONNX package with parity check -> global explanations -> registered model version."""

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from headliner.labels import Step
from headliner.spec import UseCaseSpec
from pipelines.data_engineering import data_engineering_steps
from pipelines.docker_settings import docker_settings
from steps.training import (
    check_quality_gates,
    evaluate_model,
    explain_model,
    package_model,
    register_model,
    train_model,
)


@pipeline(name="training", execution_mode=ExecutionMode.FAIL_FAST, settings={"docker": docker_settings()})
def training(
    spec: UseCaseSpec, data: str | None = None, rows: int | None = None, trigger: dict[str, str] | None = None
) -> None:
    """Candidates and selection come from the run config (steps.train_model.parameters.training).
    `trigger`: why this run started when something other than a person started it (e.g. a monitoring run's
    `retrain` decision); recorded in the run's parameters and on the model version it registers."""
    train_split, validation_split, test_split, validation_report = data_engineering_steps(spec, data, rows)
    sklearn_model, model_selection = train_model(train_split, validation_split, spec=spec)
    evaluation_report = evaluate_model(sklearn_model, model_selection, train_split, test_split, spec=spec)
    quality_gates = check_quality_gates(evaluation_report, spec=spec)
    # The model version is created only when packaging starts, i.e. after every gate has passed.
    model = Model(name=spec.name, description=spec.description, tags=[spec.name, "onnx"])
    onnx_model = package_model.with_options(model=model)(
        sklearn_model, evaluation_report, train_split, test_split, spec=spec, after=Step.CHECK_QUALITY_GATES
    )
    global_explanations = explain_model.with_options(model=model)(onnx_model, validation_split, spec=spec)
    register_model.with_options(model=model)(  # the version is registered with its explanations (in its card)
        onnx_model,
        evaluation_report,
        model_selection,
        quality_gates,
        train_split,
        validation_split,
        test_split,
        global_explanations,
        validation_report,
        spec=spec,
        trigger=trigger,
    )
