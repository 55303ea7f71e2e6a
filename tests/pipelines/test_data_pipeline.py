"""The data engineering pipeline, run through the CLI (`python run.py --pipeline data`) once per
use case on small data in the session's isolated ZenML store, then checked artifact by artifact."""

import os

import numpy as np
import pandas as pd
import pytest

from headliner.data.profiling import EVIDENTLY_FILE, DataProfile
from headliner.data.splitting import dataframe_fingerprint
from headliner.labels import Artifact, Step
from headliner.reports.html import MAX_VISUALIZATION_BYTES, DataReport, script_free_problems
from tests.helpers.cli import run_cli, run_pipeline

SPLITS = (Artifact.TRAIN_SPLIT, Artifact.VALIDATION_SPLIT, Artifact.TEST_SPLIT)
ARTIFACTS = {
    Step.INGEST_DATA: [Artifact.RAW_DATA],
    Step.VALIDATE_DATA: [Artifact.VALIDATION_REPORT],
    Step.WRANGLE_DATA: [Artifact.WRANGLED_DATA, Artifact.WRANGLING_REPORT],
    Step.LABEL_DATA: [Artifact.LABELLED_DATA, Artifact.LABELLING_REPORT],
    Step.SPLIT_DATA: [*SPLITS, Artifact.SPLIT_REPORT],
    Step.PROFILE_DATA: [Artifact.DATA_PROFILE],
}


def output(run, step: str, name: str):
    return run.steps[step].outputs[name][0]


def kaggle_csv_not_from_the_generator(path, rng_seed: int = 3) -> pd.DataFrame:
    """A Kaggle-format CSV written by hand here: 40 songs, 25 columns, real-world oddities."""
    rng = np.random.default_rng(rng_seed)
    countries = ["US", "DE", "MX", "JP", "", "BR", "FR", "IN"]
    rows = []
    for song in range(40):
        features = {
            "is_explicit": bool(rng.integers(0, 2)),
            "duration_ms": int(rng.integers(90_000, 300_000)),
            "danceability": rng.uniform(0.3, 0.95),
            "energy": rng.uniform(0.2, 0.95),
            "key": int(rng.integers(0, 12)),
            "loudness": rng.uniform(-14, -2),
            "mode": int(rng.integers(0, 2)),
            "speechiness": rng.uniform(0.03, 0.4),
            "acousticness": rng.uniform(0, 0.9),
            "instrumentalness": rng.uniform(0, 0.05),
            "liveness": rng.uniform(0.05, 0.5),
            "valence": rng.uniform(0.1, 0.95),
            "tempo": rng.uniform(70, 180),
            "time_signature": 4,
        }
        for country in rng.choice(countries, size=3, replace=False):
            for day in range(2):
                rows.append(
                    {
                        "spotify_id": f"6habFhsOp2NvshLv26D{song:03d}",
                        "name": f"Song {song}",
                        "artists": "Someone",
                        "daily_rank": int(rng.integers(1, 51)),
                        "daily_movement": 0,
                        "weekly_movement": 0,
                        "country": country,
                        "snapshot_date": f"2024-05-{10 + day:02d}",
                        "popularity": 80,
                        "album_name": "Album",
                        "album_release_date": "2024-01-01",
                        **features,
                    }
                )
    frame = pd.DataFrame(rows)
    frame.loc[0, "tempo"] = 0.0
    frame.loc[1, "loudness"] = 1.2
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="session")
def jukebox_run(isolated_env):
    return run_pipeline(["--pipeline", "data", "--rows", "4000"], isolated_env)


@pytest.fixture(scope="session")
def wine_run(isolated_env):
    return run_pipeline(["--pipeline", "data", "--config", "configs/use_cases/wine.yaml"], isolated_env)


@pytest.fixture(scope="session")
def file_run(isolated_env, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "top_songs.csv"
    frame = kaggle_csv_not_from_the_generator(path)
    run, _ = run_pipeline(["--pipeline", "data", "--data", str(path)], isolated_env)
    return run, frame


def test_first_run_sets_up_the_local_stack(jukebox_run):
    from zenml.client import Client

    run, stdout = jukebox_run
    assert "on stack 'local'" in stdout
    stack = Client().active_stack_model
    assert stack.name == "local"
    flavors = {t.value: c[0].flavor_name for t, c in stack.components.items()}
    assert flavors["experiment_tracker"] == "mlflow" and flavors["model_registry"] == "mlflow"
    assert flavors["model_deployer"] == "bentoml" and flavors["data_validator"] == "evidently"
    assert run.status.value == "completed"


def test_every_step_writes_its_named_artifacts(jukebox_run):
    run, _ = jukebox_run
    for step, names in ARTIFACTS.items():
        assert run.steps[step].status.value == "completed"
        assert sorted(run.steps[step].outputs) == sorted(names)


def test_splits_are_grouped_fingerprinted_and_complete(jukebox_run, jukebox_spec):
    run, stdout = jukebox_run
    parts = {name: output(run, Step.SPLIT_DATA, name).load() for name in SPLITS}
    labelled = output(run, Step.LABEL_DATA, Artifact.LABELLED_DATA).load()
    assert sum(len(p) for p in parts.values()) == len(labelled) > 300
    songs = [set(p["spotify_id"]) for p in parts.values()]
    assert not (songs[0] & songs[1] or songs[0] & songs[2] or songs[1] & songs[2])
    for name, part in parts.items():
        artifact = output(run, Step.SPLIT_DATA, name)
        assert artifact.run_metadata["fingerprint"] == dataframe_fingerprint(part)
        assert artifact.run_metadata["rows"] == len(part)
        assert f"fingerprint {dataframe_fingerprint(part)}" in stdout
        assert list(part.columns) == jukebox_spec.raw_columns
        assert set(part["country"]) <= set(jukebox_spec.target.classes)
        assert part[jukebox_spec.feature_names].notna().all().all()


def test_reports_count_the_generated_oddities(jukebox_run):
    run, _ = jukebox_run
    validation = output(run, Step.VALIDATE_DATA, Artifact.VALIDATION_REPORT).load()
    wrangling = output(run, Step.WRANGLE_DATA, Artifact.WRANGLING_REPORT).load()
    assert isinstance(validation, DataReport) and validation.rows_in == 4000
    assert validation.rows_affected("no label") > 0  # global chart rows
    assert validation.rows_affected("duplicate row") > 0
    assert wrangling.rows_affected("repeated example key") > 0
    assert wrangling.rows_out == len(output(run, Step.WRANGLE_DATA, Artifact.WRANGLED_DATA).load())


def test_reports_have_dashboard_visualizations(jukebox_run):
    from zenml.artifacts.utils import load_artifact_visualization
    from zenml.io import fileio

    run, _ = jukebox_run
    report_artifact = output(run, Step.VALIDATE_DATA, Artifact.VALIDATION_REPORT)
    assert report_artifact.visualizations and report_artifact.visualizations[0].type.value == "html"
    page = load_artifact_visualization(report_artifact).value
    page = page.decode() if isinstance(page, bytes) else page
    assert "Validation of jukebox raw data" in page and "<table>" in page
    profile = output(run, Step.PROFILE_DATA, Artifact.DATA_PROFILE)
    assert [v.type.value for v in profile.visualizations] == ["html"]
    profile_page = load_artifact_visualization(profile).value
    profile_page = profile_page.decode() if isinstance(profile_page, bytes) else profile_page
    assert profile_page.lstrip().lower().startswith("<!doctype html>")
    assert all(column in profile_page for column in ("danceability", "tempo", "country"))
    # static (the dashboard's frame runs no scripts), with Evidently's interactive page beside it
    assert script_free_problems(profile_page) == [] and len(profile_page.encode()) < MAX_VISUALIZATION_BYTES
    report = profile.load()
    labelled = output(run, Step.LABEL_DATA, Artifact.LABELLED_DATA).load()
    assert isinstance(report, DataProfile) and report.rows == len(labelled) and f"{len(labelled):,}" in profile_page
    with fileio.open(os.path.join(profile.uri, EVIDENTLY_FILE), "r") as handle:
        assert handle.read() == report.evidently_html and "<script" in report.evidently_html


def test_wine_runs_with_the_same_pipeline(wine_run, wine_spec):
    run, _ = wine_run
    parts = {name: output(run, Step.SPLIT_DATA, name).load() for name in SPLITS}
    assert [len(p) for p in parts.values()] == [106, 36, 36]
    for part in parts.values():
        assert set(part["target"]) == {"class_0", "class_1", "class_2"}
        assert list(part.columns) == wine_spec.raw_columns


def test_a_kaggle_csv_from_elsewhere_is_accepted(file_run):
    run, raw = file_run
    validation = output(run, Step.VALIDATE_DATA, Artifact.VALIDATION_REPORT).load()
    assert validation.rows_in == len(raw) == 240
    assert validation.rows_affected("no label") == int((raw["country"].fillna("") == "").sum())
    assert validation.rows_affected("out of range", "tempo") >= 1
    assert validation.rows_affected("out of range", "loudness") >= 1
    labelled = output(run, Step.LABEL_DATA, Artifact.LABELLED_DATA).load()
    assert labelled["loudness"].max() <= 0.0
    assert not labelled.duplicated(subset=["spotify_id", "country"]).any()


def test_a_validation_failure_stops_the_run_with_one_line(isolated_env, tmp_path):
    bad = tmp_path / "no_tempo.csv"
    frame = kaggle_csv_not_from_the_generator(tmp_path / "full.csv")
    frame.drop(columns=["tempo"]).to_csv(bad, index=False)
    result = run_cli(["--pipeline", "data", "--data", str(bad)], isolated_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: missing required column(s) 'tempo'; expected all of the spec's columns, found: "
        "spotify_id, name, artists, daily_rank, daily_movement, weekly_movement, country, snapshot_date, "
        "popularity, album_name, album_release_date, is_explicit ..."
    )
    from zenml.client import Client

    failed = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
    assert failed.status.value == "failed"
    assert Step.WRANGLE_DATA not in failed.steps or failed.steps[Step.WRANGLE_DATA].status.value != "completed"
