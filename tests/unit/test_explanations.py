"""Explanations: local SHAP values add up to the answer, name the class and the feature in the use case's
words, are signed right, and are exact where Shapley values are known; a file without background is refused clearly;
global explanations rank what the model uses and render as a static page."""

import json
import re

import numpy as np
import onnx
import pandas as pd
import pytest

from headliner.model.explanations import (
    ExplanationError,
    GlobalExplanations,
    LocalExplainer,
    contribution_text,
    forecast_text,
    format_value,
    global_explanations,
    metric_scorer,
    metric_value,
    permutation_shap,
    rounded_amount,
)
from headliner.model.onnx_packaging import EXPLANATION_BACKGROUND, OnnxPredictor, explanation_background
from headliner.reports.html import script_free_problems


def softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


class ToyPredictor:
    """The interface LocalExplainer reads, around a known model: 3 features, 3 classes; feature 0 pushes
    class A up, feature 1 pushes class B up, feature 2 is ignored."""

    weights = np.array([[4.0, -2.0, 0.0], [0.0, 3.0, -1.0], [0.0, 0.0, 0.0]])  # [feature, class]

    def __init__(self) -> None:
        self._set_up()

    def _set_up(self) -> None:
        self.model_name, self.model_version = "toy", "1"
        self.task, self.is_classification, self.target = "multiclass_classification", True, None
        self.classes = ["A", "B", "C"]
        self.class_names = ["Class A", "Class B", "Class C"]
        self.top_k = 2
        self.feature_names = ["push_a", "push_b", "ignored"]
        self.feature_schema = [
            {"name": "push_a", "dtype": "float", "unit": "dB", "description": "Pushes class A up, a long description"},
            {"name": "push_b", "dtype": "int", "unit": None, "description": "Mode: 1 = major, 0 = minor"},
            {"name": "ignored", "dtype": "bool", "unit": None, "description": "Ignored"},
        ]
        self.background = np.random.default_rng(1).uniform(0, 1, size=(20, 3)).round(2)
        self.background[:, 1] = np.arange(20) % 2
        self.background[:, 2] = np.arange(20) % 3 == 0

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(matrix, dtype=np.float64) @ self.weights).astype(np.float32)

    scores = probabilities

    @property
    def output_names(self) -> list[str]:
        return self.classes

    def top_classes(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        return order, np.take_along_axis(probabilities, order, axis=1)


@pytest.fixture(scope="module")
def toy() -> ToyPredictor:
    return ToyPredictor()


def test_contributions_add_up_to_probability_minus_base(predictor):
    explainer = LocalExplainer(predictor)
    songs = predictor.background[:4] * np.array([1.0, 1.1, 0.9, 1.05, 1, 1.02, 1, 0.8, 1.1, 1, 0.9, 1.1, 1.03])
    explanations = explainer.explain(songs)
    probabilities = predictor.probabilities(songs)
    assert len(explanations) == 4
    for row, explanation in enumerate(explanations):
        assert len(explanation.classes) == predictor.top_k
        shown = [c.probability for c in explanation.classes]
        assert shown == sorted(shown, reverse=True)
        expected_top = np.argsort(-probabilities[row])[: predictor.top_k]
        assert [c.label for c in explanation.classes] == [predictor.classes[i] for i in expected_top]
        for cls in explanation.classes:
            assert cls.name == predictor.class_names[predictor.classes.index(cls.label)]
            assert cls.probability == pytest.approx(float(probabilities[row, predictor.classes.index(cls.label)]))
            assert sum(c.contribution for c in cls.contributions) + cls.base_probability == pytest.approx(
                cls.probability, abs=1e-5
            )
            assert [c.feature for c in cls.contributions] != []
            assert sorted(c.feature for c in cls.contributions) == sorted(predictor.feature_names)
            sizes = [abs(c.contribution) for c in cls.contributions]
            assert sizes == sorted(sizes, reverse=True)


def test_explanations_are_deterministic_and_independent_of_the_batch(predictor):
    explainer = LocalExplainer(predictor)
    songs = predictor.background[5:8] + 0.01
    together = explainer.explain(songs)
    alone = explainer.explain(songs[1:2])
    assert explainer.explain(songs) == together
    # SHAP values do not depend on the batch; ONNX Runtime's probabilities may, in the last float32 bit
    for single, batched in zip(alone[0].classes, together[1].classes, strict=True):
        assert single.contributions == batched.contributions
        assert single.probability == pytest.approx(batched.probability, abs=1e-7)


def test_the_values_are_shaps_permutation_values(predictor):
    """The vectorised estimator is shap's permutation method: the same seed gives shap's numbers."""
    import shap

    from headliner.model.explanations import EXPLANATION_SEED, probability_function

    explainer = LocalExplainer(predictor)
    model = probability_function(predictor)
    for song in predictor.background[10:13] * 1.07:
        np.random.seed(EXPLANATION_SEED)  # shap draws its permutations from numpy's global generator
        reference = shap.PermutationExplainer(
            model,
            shap.maskers.Independent(predictor.background, max_samples=len(predictor.background)),
            seed=EXPLANATION_SEED,
        )
        expected = reference(song[None, :], silent=True)
        values, base = explainer.shap_values(song[None, :])
        np.testing.assert_allclose(values[0], expected.values[0], atol=1e-9)
        np.testing.assert_allclose(base[0], expected.base_values[0], atol=1e-9)


def test_an_additive_model_gets_its_exact_shapley_values(toy):
    # for f(x) = x @ W every permutation gives feature j the share W[j] * (x_j - mean of the background's x_j)
    weights = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]])
    songs = np.array([[0.9, 1.0, 1.0], [0.1, 0.0, 0.2]])
    values, base = permutation_shap(lambda m: m @ weights, songs, toy.background)
    expected = (songs - toy.background.mean(axis=0))[:, :, None] * weights[None, :, :]
    np.testing.assert_allclose(values, expected, atol=1e-12)
    np.testing.assert_allclose(base, np.tile(toy.background.mean(axis=0) @ weights, (2, 1)), atol=1e-12)
    # a feature equal to every background row's value varies nothing and gets 0, as in shap
    flat = np.full((5, 3), 0.5)
    values, _ = permutation_shap(lambda m: m @ weights, np.array([[0.5, 0.9, 0.5]]), flat)
    np.testing.assert_allclose(values[0, [0, 2]], 0, atol=0)


def test_a_value_that_pushes_a_class_is_signed_right_and_worded(toy):
    explainer = LocalExplainer(toy)  # type: ignore[arg-type]
    song = np.array([[1.0, 0.0, 0.0]])  # push_a high: class A up; push_b 0 (minor): class B down
    (explanation,) = explainer.explain(song)
    top = explanation.classes[0]
    assert top.label == "A"
    by_feature = {c.feature: c for c in top.contributions}
    assert by_feature["push_a"].contribution > 0.05
    assert by_feature["push_a"].text.startswith("Push a 1 dB raises Class A by ")
    assert by_feature["push_a"].text.endswith(" points")
    assert by_feature["ignored"].contribution == pytest.approx(0, abs=1e-12)
    assert by_feature["ignored"].text == "Ignored no hardly changes Class A"
    assert top.contributions[0].feature == "push_a"
    class_b = LocalExplainer(toy).shap_values(song)[0][0, :, 1]  # type: ignore[arg-type]
    assert class_b[1] < 0  # push_b below the background's values lowers class B
    lowered = contribution_text(toy.feature_schema[1], 0.0, float(class_b[1]), "Class B")
    assert lowered.startswith("Push b 0 (minor) lowers Class B by ")


def test_texts_use_units_codes_and_points():
    schema = {"name": "danceability", "dtype": "float", "unit": None, "description": "How suitable, 0 to 1"}
    assert contribution_text(schema, 0.82, 0.031, "Brazil") == "Danceability 0.82 raises Brazil by 3.1 points"
    assert contribution_text(schema, 0.82, -0.0042, "Brazil") == "Danceability 0.82 lowers Brazil by 0.42 points"
    duration = {
        "name": "duration_ms",
        "dtype": "int",
        "unit": "ms",
        "description": "Length of the song in milliseconds",
    }
    assert format_value(190000.0, duration) == "190000 ms"
    assert contribution_text(duration, 190000.0, 0.001, "Canada") == "Duration 190000 ms raises Canada by 0.10 points"
    assert format_value(1.0, {"name": "is_explicit", "dtype": "bool"}) == "yes"
    assert format_value(1.0, {"name": "mode", "dtype": "int", "description": "Modality: 1 = major, 0 = minor"}) == (
        "1 (major)"
    )


def test_the_service_can_word_a_jukebox_answer(predictor):
    (explanation,) = LocalExplainer(predictor).explain(predictor.background[:1] * 0.9)
    top = explanation.classes[0]
    assert all(top.name in c.text for c in top.contributions)
    danceability = next(c for c in top.contributions if c.feature == "danceability")
    assert danceability.text.startswith(f"Danceability {danceability.value:.3g} ")


def test_a_file_without_background_is_refused_clearly(jukebox_onnx_file):
    model = onnx.load(jukebox_onnx_file)
    kept = [prop for prop in model.metadata_props if prop.key != EXPLANATION_BACKGROUND]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    older = OnnxPredictor.from_model(model)
    assert older.background is None
    with pytest.raises(ExplanationError, match="no 'explanation_background' metadata"):
        LocalExplainer(older)


def test_the_background_is_a_seeded_sample_of_complete_training_rows(jukebox_spec):
    from headliner.data.sources import load_raw_data
    from headliner.data.wrangling import wrangle

    frame, _ = wrangle(load_raw_data(jukebox_spec, rows=3000), jukebox_spec, "test")
    frame.loc[frame.index[:5], "tempo"] = np.nan
    first = explanation_background(frame, jukebox_spec)
    assert first == explanation_background(frame, jukebox_spec)
    rows = np.array(json.loads(first[EXPLANATION_BACKGROUND]))
    assert rows.shape == (50, 13)
    assert not np.isnan(rows).any()
    tempo = jukebox_spec.feature_names.index("tempo")
    # the values are the float32 values the graph takes, rows of the frame
    assert set(rows[:, tempo].astype(np.float32)) <= set(frame["tempo"].dropna().astype(np.float32))


def test_packaged_models_carry_the_background(predictor, jukebox_onnx_file):
    from materializers.onnx_materializer import model_card_html

    assert predictor.background is not None
    assert predictor.background.shape == (50, len(predictor.feature_names))
    card = model_card_html(onnx.load(jukebox_onnx_file))  # the dashboard's page of the file: its size, not its rows
    assert "<td>explanation_background</td><td>50 training rows x 13 features</td>" in card
    assert json.dumps(predictor.background.tolist()[0])[:20] not in card


class WineToy(ToyPredictor):
    """A known model over the wine spec's features and classes: alcohol decides class_0 vs class_1, hue
    weakly class_2; every other feature is ignored."""

    def __init__(self, spec) -> None:
        self._set_up()
        self.model_name, self.model_version = "wine", "3"
        self.feature_names = spec.feature_names
        self.classes = spec.target.classes
        self.class_names = [c.replace("_", " ") for c in self.classes]
        self.feature_schema = [
            {"name": n, "dtype": "float", "unit": None, "description": n} for n in self.feature_names
        ]
        self.weights = np.zeros((len(self.feature_names), len(self.classes)))
        self.weights[self.feature_names.index("alcohol")] = [6.0, -6.0, 0.0]
        self.weights[self.feature_names.index("hue")] = [0.0, 0.0, 2.0]
        self.background = np.random.default_rng(2).uniform(-1, 1, size=(30, len(self.feature_names)))


@pytest.fixture(scope="module")
def wine_explanations(wine_spec):
    toy = WineToy(wine_spec)
    generator = np.random.default_rng(3)
    features = generator.uniform(-1, 1, size=(400, len(toy.feature_names)))
    scores = features @ toy.weights + generator.normal(0, 0.5, size=(400, len(toy.classes)))
    frame = pd.DataFrame(features, columns=toy.feature_names)
    frame[wine_spec.target.column] = np.array(toy.classes)[scores.argmax(axis=1)]
    return global_explanations(toy, frame, wine_spec, repeats=3, shap_rows=40)  # type: ignore[arg-type]


def test_global_importance_ranks_what_the_model_uses(wine_explanations, wine_spec):
    explanations = wine_explanations
    assert explanations.metric == wine_spec.evaluation.primary_metric == "accuracy"
    assert 0.5 < explanations.metric_value <= 1
    assert explanations.overall[0].feature == "alcohol"
    by_feature = {f.feature: f for f in explanations.overall}
    assert set(by_feature) == set(wine_spec.feature_names)
    assert by_feature["alcohol"].mean_drop > 0.2
    assert by_feature["proline"].mean_drop == pytest.approx(0, abs=1e-12)  # ignored: shuffling changes nothing
    assert by_feature["proline"].std == pytest.approx(0, abs=1e-12)
    assert by_feature["proline"].mean_abs_shap == pytest.approx(0, abs=1e-12)
    assert explanations.importance_rows == 400 and explanations.shap_rows == 40 and explanations.repeats == 3
    per_class = {c.label: c for c in explanations.per_class}
    assert list(per_class) == wine_spec.target.classes
    assert per_class["class_0"].top_features(1)[0][0] == "alcohol"
    assert per_class["class_2"].mean_abs_shap["hue"] > per_class["class_2"].mean_abs_shap["proline"]
    assert sum(c.rows for c in explanations.per_class) == 400


def test_global_explanations_render_as_a_static_page(wine_explanations, wine_spec):
    page = wine_explanations.to_html()
    assert script_free_problems(page) == []
    assert all(feature in page for feature in wine_spec.feature_names)
    assert "class 0" in page and page.count("data:image/png;base64,") == 2
    assert wine_explanations.summary_metadata()["top_features"].startswith("alcohol")
    assert set(wine_explanations.png_images()) == {"importance", "per_class"}
    restored = GlobalExplanations.model_validate_json(wine_explanations.model_dump_json())
    assert restored == wine_explanations


def test_lower_is_better_metrics_are_scored_as_drops():
    y = np.array([0, 1, 1])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    worse = np.array([[0.6, 0.4], [0.4, 0.6], [0.5, 0.5]])
    scorer = metric_scorer("log_loss", 2, 1)
    model = type("Fixed", (), {"scores": lambda self, m: m})()
    assert scorer(model, good, y) > scorer(model, worse, y)  # larger is better, as permutation importance needs
    assert metric_value("top_k_accuracy", y, worse, 2, 1) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="metric 'auc' is not one of"):
        metric_scorer("auc", 2, 1)


def test_validation_rows_of_an_unknown_class_are_refused(wine_spec):
    toy = WineToy(wine_spec)
    frame = pd.DataFrame(np.zeros((3, len(toy.feature_names))), columns=toy.feature_names)
    frame[wine_spec.target.column] = ["class_0", "class_9", "class_1"]
    with pytest.raises(ValueError, match="column 'target' has classes the model lacks: \\['class_9'\\]"):
        global_explanations(toy, frame, wine_spec)  # type: ignore[arg-type]


# -- a regression model: the forecast in the target's unit --------------------------------------------------


@pytest.fixture(scope="module")
def sales_spec():
    from headliner.spec import USE_CASES_DIR, load_spec

    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="module")
def sales_file(sales_spec, tmp_path_factory):
    from tests.helpers.models import packaged_model

    path = tmp_path_factory.mktemp("sales") / "store_sales.onnx"
    path.write_bytes(packaged_model(sales_spec, rows=20_000))
    return path


@pytest.fixture(scope="module")
def sales_predictor(sales_file):
    return OnnxPredictor.from_path(sales_file)


def sales_rows(predictor, promotions):
    """Background-like rows (the background's median week) with `promotions` items on promotion."""
    rows = np.tile(np.median(predictor.background, axis=0), (len(promotions), 1))
    rows[:, predictor.feature_names.index("onpromotion")] = promotions
    return rows


def test_a_forecasts_contributions_add_up_to_it_in_the_targets_unit(sales_predictor):
    rows = sales_predictor.background[:6] * np.linspace(0.8, 1.2, 8)
    explanations = LocalExplainer(sales_predictor).explain_forecasts(rows)
    forecasts = sales_predictor.predict_values(dict(zip(sales_predictor.feature_names, rows.T, strict=True)))
    assert len(explanations) == 6
    for explanation, forecast in zip(explanations, forecasts, strict=True):
        assert explanation.output == "sales" and explanation.unit == "units"
        assert explanation.prediction == pytest.approx(float(forecast), rel=1e-6)
        total = explanation.base_value + sum(c.contribution for c in explanation.contributions)
        assert abs(total - explanation.prediction) <= 1e-4 * max(1.0, abs(explanation.prediction))
        assert sorted(c.feature for c in explanation.contributions) == sorted(sales_predictor.feature_names)
        sizes = [abs(c.contribution) for c in explanation.contributions]
        assert sizes == sorted(sizes, reverse=True)
    # the base value is the mean forecast over the background the file carries
    assert explanations[0].base_value == pytest.approx(
        float(sales_predictor.scores(sales_predictor.background).astype(np.float64).mean()), rel=1e-6
    )


def test_a_promotion_raises_the_forecast_and_says_so_in_units(sales_predictor):
    background_promotions = sales_predictor.background[:, sales_predictor.feature_names.index("onpromotion")]
    assert background_promotions.mean() < 40
    ordinary, promoted = LocalExplainer(sales_predictor).explain_forecasts(sales_rows(sales_predictor, [0, 40]))
    effect = {c.feature: c for c in promoted.contributions}["onpromotion"]
    assert effect.value == 40 and effect.contribution > 0
    assert {c.feature: c for c in ordinary.contributions}["onpromotion"].contribution < effect.contribution
    assert re.fullmatch(r"Onpromotion 40 raises the forecast by [\d,.]+ units", effect.text), effect.text
    # every other feature has the same value in both rows: the forecasts differ by about the promotion's effect
    # (exactly for a linear model; the forecast is clipped at 0, which makes the model not quite additive)
    difference = promoted.prediction - ordinary.prediction
    assert difference > 0
    assert effect.contribution - {c.feature: c for c in ordinary.contributions}["onpromotion"].contribution == (
        pytest.approx(difference, rel=0.05)
    )


def test_each_task_has_its_own_explanation_and_refuses_the_other(sales_predictor, predictor):
    with pytest.raises(ValueError, match="store_sales is a regression model: explain its answers with "):
        LocalExplainer(sales_predictor).explain(sales_predictor.background[:1])
    with pytest.raises(ValueError, match=r"is a multiclass_classification model: .*LocalExplainer\.explain$"):
        LocalExplainer(predictor).explain_forecasts(predictor.background[:1])
    values, base = LocalExplainer(sales_predictor).shap_values(sales_predictor.background[:2])
    assert values.shape == (2, len(sales_predictor.feature_names), 1) and base.shape == (2, 1)


def test_forecast_texts_round_like_people_do():
    lag = {"name": "sales_lag_1", "dtype": "float", "unit": "units", "description": "Units sold the week before"}
    assert forecast_text(lag, 1200.0, 85.04, "units") == (
        "Units sold the week before 1,200 units raises the forecast by 85 units"
    )
    assert forecast_text(lag, 350.0, -1238.6, "units") == (
        "Units sold the week before 350 units lowers the forecast by 1,240 units"
    )
    assert (
        forecast_text(lag, 350.0, 0.001, "units") == "Units sold the week before 350 units hardly changes the forecast"
    )
    assert [rounded_amount(v) for v in (1238.6, 85.34, 0.01234, 1_234_567.0)] == [
        "1,240",
        "85.3",
        "0.0123",
        "1,230,000",
    ]


def test_global_explanations_of_a_forecast_rank_its_features_by_the_mae_they_cost(sales_predictor, sales_spec):
    from headliner.model.evaluation import regression_metrics
    from tests.helpers.models import sales_frame

    validation = sales_frame(sales_spec, series=8, weeks=70)
    explanations = global_explanations(sales_predictor, validation, sales_spec, repeats=3, shap_rows=20)
    assert explanations.task == "regression" and explanations.unit == "units" and explanations.per_class == []
    assert explanations.metric == "mae" and explanations.importance_rows == len(validation)
    features = validation[sales_spec.feature_names].to_numpy(dtype=np.float64)
    forecasts = sales_predictor.scores(features)[:, 0]
    expected = regression_metrics(validation["sales"].to_numpy(), forecasts)["mae"]
    assert explanations.metric_value == pytest.approx(expected, rel=1e-9)
    by_feature = {f.feature: f for f in explanations.overall}
    assert set(by_feature) == set(sales_spec.feature_names)
    drops = [f.mean_drop for f in explanations.overall]
    assert drops == sorted(drops, reverse=True)
    # shuffling what the forecast leans on costs MAE: a drop of the sign-turned score, in units
    assert explanations.overall[0].mean_drop > 0 and explanations.overall[0].mean_abs_shap > 0
    page = explanations.to_html()
    assert script_free_problems(page) == [] and page.count("data:image/png;base64,") == 1
    assert "mean |SHAP| (units)" in page and "to the forecast, in units" in page and "Per class" not in page
    assert set(explanations.png_images()) == {"importance"}
    assert GlobalExplanations.model_validate_json(explanations.model_dump_json()) == explanations


def test_regression_metrics_are_scored_as_drops_of_mae():
    y = np.array([10.0, 20.0, 30.0])
    model = type("Fixed", (), {"scores": lambda self, m: m})()
    scorer = metric_scorer("mae", 0, 1)
    assert scorer(model, np.array([[11.0], [19.0], [30.0]]), y) == pytest.approx(-2 / 3)
    assert scorer(model, np.array([[11.0], [19.0], [30.0]]), y) > scorer(model, np.array([[15.0], [15], [15]]), y)
    assert metric_value("r2", y, np.array([[10.0], [20.0], [30.0]]), 0, 1) == pytest.approx(1.0)
