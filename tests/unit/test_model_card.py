"""The model card (headliner/governance/model_card.py) from hand-made inputs: every section with the right
numbers, the per-group metrics, the date range, the governance history, a script-free page, and the key
numbers read back from the Markdown."""

import hashlib
import re

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from headliner.governance.model_card import (
    ClassFeatures,
    ExplanationFacts,
    FairnessFact,
    FeatureWeight,
    GroupMetrics,
    ModelCard,
    build_model_card,
    card_command,
    group_metrics,
)
from headliner.governance.promotion import AuditEvent
from headliner.model.evaluation import EvaluationReport
from headliner.model.gates import GateResult, QualityGateReport
from headliner.model.training import CandidateScore, ModelSelection
from headliner.reports.html import script_free_problems

METRICS = {"accuracy": 0.1234, "top_k_accuracy": 0.4567, "log_loss": 3.2101}
BASELINE = {"accuracy": 0.0312, "top_k_accuracy": 0.0876, "log_loss": 4.1002}


def tiny_onnx() -> onnx.ModelProto:
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"data_fingerprint": "fp-train", "git_commit": "abc1234", "library_versions": "x"})
    return model


def event(at: str, kind: str, by: str, stage: str, reason: str) -> AuditEvent:
    return AuditEvent(
        at=at,
        event=kind,
        request_id="jukebox-v3-staging-beef",
        by=by,
        model="jukebox",
        version=3,
        stage=stage,
        reason=reason,
    )


HISTORY = [
    event("2026-12-07T07:01:02.000001+00:00", "requested", "alice", "staging", "better data"),
    event("2026-12-07T07:05:09.000002+00:00", "approved", "bob", "staging", "looks good"),
]


@pytest.fixture
def inputs(jukebox_spec):
    classes = jukebox_spec.target.classes
    report = EvaluationReport(
        use_case="jukebox",
        model_name="jukebox",
        candidate="mlp",
        rows=900,
        top_k=5,
        classes=classes,
        class_names=classes,
        metrics=METRICS,
        baseline_metrics=BASELINE,
        per_class=[],
        confusion_matrix=[],
    )
    selection = ModelSelection(
        use_case="jukebox",
        selection_metric="log_loss",
        selected="mlp",
        candidates=[
            CandidateScore(
                name="lr", family="logistic_regression", params={}, fit_seconds=1, validation_metrics={"log_loss": 3.5}
            ),
            CandidateScore(name="mlp", family="mlp", params={}, fit_seconds=2, validation_metrics={"log_loss": 3.25}),
        ],
    )
    gates = QualityGateReport(
        results=[
            GateResult(
                metric="top_k_accuracy",
                value=0.4567,
                baseline=0.0876,
                bound=">= baseline 0.0876 + 0.05 = 0.1376",
                passed=True,
                from_baseline=True,
            )
        ]
    )
    splits = {
        "train_split": pd.DataFrame({"a": [1.0, 2.0, 3.0]}),
        "validation_split": pd.DataFrame({"a": [4.0]}),
        "test_split": pd.DataFrame({"a": [5.0, 6.0]}),
    }
    return report, selection, gates, splits


def jukebox_card(jukebox_spec, inputs) -> ModelCard:
    report, selection, gates, splits = inputs
    return build_model_card(
        jukebox_spec,
        3,
        tiny_onnx(),
        report,
        selection,
        gates,
        splits,
        date_range="2024-06-02 to 2024-10-18 (139 days, snapshot_date)",
        groups=[
            GroupMetrics(value="0", rows=600, accuracy=0.111, top_k_accuracy=0.444),
            GroupMetrics(value="1", rows=300, accuracy=0.222, top_k_accuracy=0.555),
        ],
        fairness=[
            FairnessFact(name="disparate_impact_ratio", value=3.4567, label="DO", lower=0.125, upper=8),
            FairnessFact(name="equal_opportunity_difference", value=0.6123, label="BR", upper=0.5),
            FairnessFact(name="average_odds_difference", upper=0.4, note="no class has 10 rows"),
        ],
        explanations=ExplanationFacts(
            method="SHAP on the ONNX model",
            overall=[
                FeatureWeight(feature="danceability", importance=0.0421),
                FeatureWeight(feature="tempo", importance=0.01),
            ],
            per_class=[
                ClassFeatures(
                    label="BR",
                    name="Brazil",
                    features=[
                        FeatureWeight(feature="speechiness", importance=0.03),
                        FeatureWeight(feature="energy", importance=0.02),
                    ],
                )
            ],
        ),
        history=HISTORY,
        stage="staging",
        mlflow_version="7",
        links={"ZenML run": "training-2026"},
    )


def test_every_section_holds_the_right_numbers(jukebox_spec, inputs):
    card = jukebox_card(jukebox_spec, inputs)
    text = card.to_markdown()
    for heading in (
        "# The Headliner: model jukebox, version 3",
        "## Use case",
        "## Data",
        "## Candidates and why this one won",
        "## Test metrics",
        "## Quality gates",
        "## Per-group metrics on the test split, by is_explicit",
        "## Fairness across is_explicit on the test split (worst class)",
        "## Global explanations",
        "## Limitations",
        "## Governance history",
        "## Artifact",
    ):
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert jukebox_spec.decision.question in text and "BR (Brazil)" in text and "KR (South Korea)" in text
    assert "| train_split | 3 |" in text and "| test_split | 2 |" in text
    assert "Date range: 2024-06-02 to 2024-10-18 (139 days, snapshot_date)" in text
    assert "mlp won on validation log_loss (lower is better): 3.2500 against 3.5000 for the runner-up lr." in text
    assert "| * mlp | mlp | 3.2500 |" in text and "| lr | logistic_regression | 3.5000 |" in text
    assert "| top_k_accuracy | 0.4567 | 0.0876 |" in text and "| log_loss | 3.2101 | 4.1002 |" in text
    assert "| top_k_accuracy | 0.4567 | >= baseline 0.0876 + 0.05 = 0.1376 | passed |" in text
    assert "| 0 | 600 | 0.1110 | 0.4440 |" in text and "| 1 | 300 | 0.2220 | 0.5550 |" in text
    assert "| disparate_impact_ratio | 3.4567 | DO | 0.125-8 | within |  |" in text
    assert "| equal_opportunity_difference | 0.6123 | BR | 0.5 | OUTSIDE |  |" in text
    assert "| average_odds_difference | n/a |  | 0.4 | n/a | no class has 10 rows |" in text
    assert "1. danceability (0.0421)" in text and "| Brazil (BR) | speechiness, energy |" in text
    for limitation in jukebox_spec.limitations:
        assert f"- {limitation}" in text
    assert f"ONNX file sha256: {hashlib.sha256(tiny_onnx().SerializeToString()).hexdigest()}" in text
    assert "git_commit: abc1234" in text and "data_fingerprint: fp-train" in text
    assert f"This card: {card_command('jukebox', 3)}" in text and "MLflow registry: model jukebox, version 7" in text
    assert card.summary_metadata()["test_accuracy"] == 0.1234 and card.summary_metadata()["events"] == 2


def test_history_rendering(jukebox_spec, inputs):
    card = jukebox_card(jukebox_spec, inputs)
    text = card.to_markdown()
    assert "Stage now: staging." in text
    assert "| 2026-12-07T07:01:02Z | requested | staging | alice | better data | jukebox-v3-staging-beef |" in text
    assert "| 2026-12-07T07:05:09Z | approved | staging | bob | looks good | jukebox-v3-staging-beef |" in text
    assert text.index("| requested |") < text.index("| approved |")
    empty = card.model_copy(update={"history": [], "stage": "none"}).to_markdown()
    assert "Stage now: none. No promotion events yet." in empty and "| requested |" not in empty


def test_html_is_static_and_holds_the_same_facts(jukebox_spec, inputs):
    card = jukebox_card(jukebox_spec, inputs)
    page = card.to_html()
    assert script_free_problems(page) == []
    assert "<h1>The Headliner: model jukebox, version 3</h1>" in page
    for cell in ("<td>0.4567</td>", "<td>alice</td>", "<td>bob</td>", "<td>OUTSIDE</td>", card.onnx_sha256):
        assert cell in page
    assert f"<ul><li>{jukebox_spec.limitations[0]}</li>" in page and "<ol><li>danceability (0.0421)</li>" in page
    assert ModelCard.model_validate_json(card.model_dump_json()) == card  # what the materializer stores


def test_markdown_round_trip_of_the_key_numbers(jukebox_spec, inputs):
    text = jukebox_card(jukebox_spec, inputs).to_markdown()
    tested = dict(
        re.findall(r"^\| (\w+) \| ([\d.]+) \| [\d.]+ \|$", text.split("## Test metrics")[1].split("##")[0], re.M)
    )
    assert {name: float(value) for name, value in tested.items()} == pytest.approx(METRICS, abs=1e-4)
    sha = re.search(r"ONNX file sha256: ([0-9a-f]{64})", text)
    assert sha is not None and sha.group(1) == hashlib.sha256(tiny_onnx().SerializeToString()).hexdigest()


def test_a_spec_without_fairness_attribute_says_so(wine_spec, inputs):
    report, selection, gates, splits = inputs
    card = build_model_card(wine_spec, 1, tiny_onnx(), report, selection, gates, splits)
    text = card.to_markdown()
    assert "## Per-group metrics and fairness\n\nThe spec sets no fairness attribute" in text
    assert "No global explanations were computed for this version." in text
    assert "Stage now: none. No promotion events yet." in text
    assert "Synthetic data" not in text and wine_spec.limitations[0] in text


def test_group_metrics_per_attribute_value(jukebox_spec):
    classes = jukebox_spec.target.classes
    frame = pd.DataFrame(
        {"is_explicit": [0.0, 0.0, 1.0, 1.0], "country": [classes[0], classes[1], classes[2], classes[3]]}
    )
    probabilities = np.full((4, len(classes)), 0.001)
    probabilities[0, 0] = probabilities[1, 5] = probabilities[2, 2] = probabilities[3, 3] = 0.9  # row 1 wrong
    probabilities[1, 1] = 0.5  # ... but its class is second: in the top 5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    groups = group_metrics(frame, probabilities, jukebox_spec, "is_explicit")
    assert [(g.value, g.rows, g.accuracy, g.top_k_accuracy) for g in groups] == [("0", 2, 0.5, 1.0), ("1", 2, 1.0, 1.0)]


def test_explanation_facts_take_the_top_features_and_classes(jukebox_spec, inputs):
    from headliner.governance.model_card import TOP_CLASS_FEATURES, TOP_CLASSES, explanation_facts
    from headliner.model.explanations import ClassImportance, FeatureImportance, GlobalExplanations

    features = jukebox_spec.feature_names
    explanations = GlobalExplanations(
        use_case="jukebox",
        model_name="jukebox",
        model_version="3",
        metric="top_k_accuracy",
        metric_value=0.45,
        importance_rows=500,
        repeats=3,
        shap_rows=200,
        background_rows=50,
        importance_seconds=1.0,
        shap_seconds=2.0,
        overall=[
            FeatureImportance(feature=f, description=f, mean_drop=0.1 / (i + 1), std=0.001, mean_abs_shap=0.01)
            for i, f in enumerate(features)
        ],
        per_class=[
            ClassImportance(
                label=label,
                name=label,
                rows=rows,
                mean_probability=0.02,
                mean_abs_shap={f: (j + 1) / 100 for j, f in enumerate(features)},
            )
            for label, rows in (("AR", 5), ("BR", 40), ("US", 20), ("MX", 30))
        ],
    )
    facts = explanation_facts(explanations)
    assert [w.feature for w in facts.overall] == features[:8]
    assert facts.overall[0].importance == pytest.approx(0.1)
    assert [c.label for c in facts.per_class] == ["BR", "MX", "US"][:TOP_CLASSES]
    assert [w.feature for w in facts.per_class[0].features] == features[::-1][:TOP_CLASS_FEATURES]
    report, selection, gates, splits = inputs
    text = build_model_card(
        jukebox_spec, 3, tiny_onnx(), report, selection, gates, splits, explanations=facts
    ).to_markdown()
    assert "permutation importance on 500 validation rows" in text and f"1. {features[0]} (0.1000)" in text
    assert f"| BR | {', '.join(features[::-1][:TOP_CLASS_FEATURES])} |" in text


BLOCK_SKLEARN = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sklearn":
            raise ModuleNotFoundError("No module named 'sklearn'")
sys.meta_path.insert(0, Block())
from headliner.governance.model_card import ModelCard
card = ModelCard.model_validate_json(sys.stdin.read())
print(len(card.to_html()) > 0, card.to_markdown().splitlines()[0])
"""


def test_a_card_loads_and_renders_without_scikit_learn(jukebox_spec, inputs):
    """As a registry-reading service image (no scikit-learn) does for GET /model-card."""
    import subprocess
    import sys

    card = jukebox_card(jukebox_spec, inputs)
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_SKLEARN], input=card.model_dump_json(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True # The Headliner: model jukebox, version 3"


# -- a regression model's card --------------------------------------------------------------------------

SALES_METRICS = {"mae": 41.25, "rmse": 63.5, "smape": 0.1234, "r2": 0.875}
SALES_BASELINE = {"mae": 55.0, "rmse": 80.0, "smape": 0.16, "r2": 0.7}


@pytest.fixture(scope="module")
def sales_spec():
    from headliner.spec import USE_CASES_DIR, load_spec

    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="module")
def sales_onnx(sales_spec):
    from tests.helpers.models import packaged_model

    return onnx.load_model_from_string(packaged_model(sales_spec, rows=20_000))


def sales_card(spec, onnx_model) -> ModelCard:
    from headliner.governance.model_card import explanation_facts
    from headliner.model.evaluation import baseline_description
    from headliner.model.explanations import FeatureImportance, GlobalExplanations
    from headliner.spec import Task

    report = EvaluationReport(
        use_case="store_sales",
        model_name="store_sales",
        candidate="ridge",
        task=Task.REGRESSION,
        rows=480,
        metrics=SALES_METRICS,
        baseline_metrics=SALES_BASELINE,
        baseline_description=baseline_description(spec),
        target_unit="units",
    )
    selection = ModelSelection(
        use_case="store_sales",
        selection_metric="mae",
        selected="ridge",
        candidates=[
            CandidateScore(name="ridge", family="ridge", params={}, fit_seconds=1, validation_metrics={"mae": 40.5}),
            CandidateScore(
                name="forest",
                family="random_forest_regressor",
                params={},
                fit_seconds=2,
                validation_metrics={"mae": 44},
            ),
        ],
    )
    gates = QualityGateReport(
        results=[
            GateResult(
                metric="mae", value=41.25, baseline=55.0, bound="<= baseline 55 x (1 - 0.1) = 49.5", passed=True
            ),
            GateResult(metric="r2", value=0.875, baseline=0.7, bound=">= 0.5", passed=True),
        ]
    )

    def weeks(start: str, count: int) -> pd.DataFrame:
        dates = pd.date_range(start, periods=count, freq="W-MON")
        return pd.DataFrame({"date": dates.repeat(2), "store_nbr": ["1", "2"] * count, "sales": 1.0})

    splits = {
        "train_split": weeks("2023-01-02", 60),
        "validation_split": weeks("2024-02-26", 8),
        "test_split": weeks("2024-04-22", 8),
    }
    explanations = GlobalExplanations(
        use_case=spec.title,
        model_name="store_sales",
        model_version="4",
        task="regression",
        unit="units",
        metric="mae",
        metric_value=40.5,
        importance_rows=480,
        repeats=5,
        shap_rows=100,
        background_rows=50,
        importance_seconds=0.2,
        shap_seconds=1.5,
        overall=[
            FeatureImportance(feature="sales_rolling_mean_4", description="", mean_drop=42.3, std=5, mean_abs_shap=661),
            FeatureImportance(feature="onpromotion", description="", mean_drop=8.9, std=2.7, mean_abs_shap=133),
        ],
        per_class=[],
    )
    return build_model_card(
        spec,
        4,
        onnx_model,
        report,
        selection,
        gates,
        splits,
        date_range="2023-01-01 to 2024-06-16 (533 days, date)",
        explanations=explanation_facts(explanations),
        history=HISTORY[:1],
        stage="none",
        mlflow_version="2",
    )


def test_a_regression_card_names_the_target_the_baseline_and_the_weeks_of_each_split(sales_spec, sales_onnx):
    card = sales_card(sales_spec, sales_onnx)
    text = card.to_markdown()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == [
        "Use case",
        "Data",
        "Candidates and why this one won",
        "Test metrics",
        "Quality gates",
        "Global explanations",
        "Limitations",
        "Governance history",
        "Artifact",
    ]  # no per-group or fairness section: they compare predicted classes
    assert card.task == "regression" and card.classes == [] and card.target is not None
    target = "Target: sales: Units of the product family sold in the store in the week; unit units, valid range "
    assert target + "[0, 10,000,000] units." in text
    assert 'People are shown the forecast in units ("About {value} {unit}").' in text
    assert "the 8 features (5 of them computed from the target's earlier values" in text
    assert (
        "sales_lag_1 (sales 1 week before)" in text
        and "sales_rolling_mean_4 (mean sales of the 4 weeks before)" in text
    )
    assert "week_of_year (week of the year)" in text and "Classes:" not in text
    # the time split: each split's first and last week beside its rows and fingerprint
    assert "| split | rows | first period | last period | fingerprint |" in text
    assert "| train_split | 120 | 2023-01-02 | 2024-02-19 |" in text
    assert "| validation_split | 16 | 2024-02-26 | 2024-04-15 |" in text
    assert "| test_split | 16 | 2024-04-22 | 2024-06-10 |" in text
    assert "Date range: 2023-01-01 to 2024-06-16 (533 days, date)" in text
    # metrics beside the seasonal-naive baseline, and how much better
    assert "beside the baseline: seasonal naive (the same week a year before) (the 'sales_lag_52' feature" in text
    assert "| metric | model | baseline | against the baseline |" in text
    assert "| mae | 41.2500 | 55.0000 | 25.0% lower (better) |" in text
    assert "| r2 | 0.8750 | 0.7000 | 25.0% higher (better) |" in text
    assert "ridge won on validation mae (lower is better): 40.5000 against 44.0000 for the runner-up forest." in text
    assert "| mae | 41.2500 | <= baseline 55 x (1 - 0.1) = 49.5 | passed |" in text
    assert "mean |SHAP| of the forecast over 100 validation rows: sales_rolling_mean_4 661 units" in text
    assert "1. sales_rolling_mean_4 (42.3000)" in text
    for limitation in sales_spec.limitations:
        assert f"- {limitation}" in text
    assert f"ONNX file sha256: {hashlib.sha256(sales_onnx.SerializeToString()).hexdigest()}" in text
    page = card.to_html()
    assert script_free_problems(page) == [] and "<td>25.0% lower (better)</td>" in page
    assert ModelCard.model_validate_json(card.model_dump_json()) == card


def test_a_card_stored_before_regression_loads_as_a_classification_card(jukebox_spec, inputs):
    stored = jukebox_card(jukebox_spec, inputs).model_dump(mode="json")
    for newer in ("task", "answer_template", "target", "derived_features", "baseline_description"):
        stored.pop(newer)
    for split in stored["splits"]:
        split.pop("first"), split.pop("last")
    card = ModelCard.model_validate(stored)
    assert card.is_classification and card.target is None
    text = card.to_markdown()
    assert "beside the baseline (every row gets the training split's class shares)." in text
    assert "## Fairness across is_explicit on the test split (worst class)" in text


@pytest.mark.parametrize(
    ("metric", "value", "baseline", "text"),
    [
        ("mae", 41.25, 55.0, "25.0% lower (better)"),
        ("mae", 66.0, 55.0, "20.0% higher (worse)"),
        ("r2", 0.875, 0.7, "25.0% higher (better)"),
        ("r2", -0.3, -0.2, "50.0% lower (worse)"),  # relative to the baseline's size, a negative R2 too
        ("mae", 41.25, 0.0, "n/a"),
        ("mape", 0.1, float("nan"), "n/a"),  # the baseline's figure is missing (mape of zero true values)
    ],
)
def test_change_against_the_baseline_reads_as_the_evaluation_improvement(metric, value, baseline, text):
    from headliner.governance.model_card import _change_text
    from headliner.model.evaluation import improvement_over_baseline

    assert _change_text(metric, value, baseline) == text
    improvement = improvement_over_baseline(metric, value, baseline)
    assert text == "n/a" if improvement is None else text.startswith(f"{abs(improvement):.1%}")
