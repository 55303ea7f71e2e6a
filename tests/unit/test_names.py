"""The step and artifact names that pipelines, the CLI, tools and tests share (headliner/labels.py)."""

from pathlib import Path

from headliner.labels import Artifact, Step

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_the_names_that_tools_rely_on_stay_as_published():
    published = {
        Artifact.ONNX_MODEL: "onnx_model",
        Artifact.EVALUATION_REPORT: "evaluation_report",
        Artifact.TRAIN_SPLIT: "train_split",
        Artifact.VALIDATION_SPLIT: "validation_split",
        Artifact.TEST_SPLIT: "test_split",
        Artifact.MODEL_CARD: "model_card",
        Artifact.MODEL_STAGE_RECORD: "model_stage_record",
    }
    assert all(member.value == name and f"{member}" == name for member, name in published.items())


def test_every_step_module_is_a_named_step_and_every_step_name_has_its_module():
    modules = {path.stem for path in PROJECT_ROOT.glob("steps/*/*.py") if path.stem != "__init__"}
    assert modules == {step.value for step in Step}
