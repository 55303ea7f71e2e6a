"""The CLI's fast paths: help, bad options and input errors answered before ZenML starts."""

import pandas as pd

from tests.helpers.cli import run_cli


def test_help_lists_the_options():
    result = run_cli(["--help"])
    assert result.returncode == 0
    for option in ("--pipeline", "--config", "--data", "--rows", "--no-cache", "generate", "mlflow-ui"):
        assert option in result.stdout


def test_unknown_pipeline_is_a_usage_error():
    result = run_cli(["--pipeline", "nonsense"])
    assert result.returncode == 2
    assert "Invalid value for '--pipeline'" in result.stderr


def test_no_pipeline_prints_help_and_fails():
    result = run_cli([])
    assert result.returncode == 2
    assert "Usage:" in result.stdout


def test_missing_data_file_is_one_line(isolated_env, tmp_path):
    result = run_cli(["--pipeline", "data", "--data", str(tmp_path / "songs.csv")], isolated_env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'songs.csv'}: no such file"


def test_unknown_format_is_one_line(isolated_env, tmp_path):
    path = tmp_path / "songs.json"
    path.write_text("{}")
    result = run_cli(["--pipeline", "data", "--data", str(path)], isolated_env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: {path}: unknown file format '.json'")


def test_bad_spec_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\n")
    result = run_cli(["--pipeline", "data", "--config", str(spec)])
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"error: use-case spec {spec}: field '")
    assert "Traceback" not in result.stderr


def test_generate_writes_the_kaggle_format(tmp_path):
    out = tmp_path / "charts.csv"
    result = run_cli(["generate", "--rows", "800", "--seed", "5", "--out", str(out)])
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert frame.shape == (800, 25)
    assert "Wrote 800 rows x 25 columns" in result.stdout


def test_pipeline_and_command_do_not_mix():
    result = run_cli(["--pipeline", "data", "generate", "--out", "x.csv"])
    assert result.returncode == 2
    assert "cannot be combined" in result.stderr


def test_a_moved_config_path_names_its_new_place(isolated_env):
    result = run_cli(["--pipeline", "data", "--config", "configs/jukebox.yaml"], isolated_env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: configs/jukebox.yaml has moved to configs/use_cases/jukebox.yaml (docs/architecture.md, 'Moved')"
    )
    result = run_cli(["--pipeline", "training", "--run-config", "configs/training.yaml"], isolated_env)
    assert result.returncode == 1
    assert "configs/training.yaml has moved to configs/runs/training.yaml" in result.stderr
