"""The exploration notebook (notebooks/explore.ipynb) is committed without outputs, finds the repository from
the root or from notebooks/, and runs top to bottom in a kernel on a few thousand generated rows, saying what
the project's own data functions say (a kernel start and the data steps: the pipelines tier, about 15 s)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

from headliner.data.sources import load_raw_data
from headliner.data.splitting import split_examples
from headliner.data.wrangling import label_examples, wrangle
from headliner.labels import class_display_names

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"
ROWS = 20_000  # raw generated rows: about 3,700 examples, every country present
MAX_SECONDS = 90  # measured about 12 s on 2 cores, kernel start included


def tagged_cell(notebook: NotebookNode, tag: str) -> NotebookNode:
    cells = [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r} in {NOTEBOOK.name}, found {len(cells)}"
    return cells[0]


def stdout_of(cell: NotebookNode) -> str:
    return "".join(output.text for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")


def test_committed_notebook_has_no_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    stored = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert stored == [], f"{NOTEBOOK.name}: cells {stored} keep outputs or execution counts; run nbstripout on it"
    # nbstripout (the pre-commit hook) would change nothing else either: no widget state or cell timings
    nbstripout = Path(sys.executable).with_name("nbstripout")
    check = subprocess.run([nbstripout, "--verify", NOTEBOOK], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def run_parameters_cell(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The notebook's first code cell (repository and settings) as a script, in `cwd`."""
    source = tagged_cell(nbformat.read(NOTEBOOK, as_version=4), "parameters").source
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEADLINER_NOTEBOOK_")}
    return subprocess.run(
        [sys.executable, "-c", source], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, check=False
    )


def test_parameters_from_the_repository_root_and_their_errors(tmp_path: Path) -> None:
    defaults = run_parameters_cell(ROOT)
    assert defaults.returncode == 0, defaults.stderr
    assert f"repository: {ROOT}\n" in defaults.stdout
    assert f"spec: {ROOT / 'configs/use_cases/jukebox.yaml'}\n" in defaults.stdout
    assert "data: (the spec source)\n" in defaults.stdout  # the generator: never the real data next door
    assert "rows: 100000\n" in defaults.stdout

    everything = run_parameters_cell(ROOT, HEADLINER_NOTEBOOK_ROWS="all", HEADLINER_NOTEBOOK_DATA="charts.csv")
    assert everything.returncode == 0, everything.stderr
    assert f"data: {ROOT / 'charts.csv'}\n" in everything.stdout and "rows: all\n" in everything.stdout

    bad_rows = run_parameters_cell(ROOT, HEADLINER_NOTEBOOK_ROWS="lots")
    assert bad_rows.returncode != 0
    assert "HEADLINER_NOTEBOOK_ROWS='lots': expected a positive whole number of rows, or 'all'" in bad_rows.stderr

    outside = run_parameters_cell(tmp_path)
    assert outside.returncode != 0
    assert f"no Headliner repository in {tmp_path.resolve()} or above it" in outside.stderr


@pytest.fixture(scope="module")
def executed(isolated_env: dict[str, str]) -> tuple[NotebookNode, float]:
    """The notebook run top to bottom from notebooks/, on ROWS generated rows, and how long it took."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = {k: v for k, v in isolated_env.items() if not k.startswith("HEADLINER_NOTEBOOK_")}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend draws the figures into the outputs
    env["HEADLINER_NOTEBOOK_ROWS"] = str(ROWS)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=MAX_SECONDS, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, naming the cell, if any cell fails
    return notebook, time.perf_counter() - start


def test_notebook_runs_top_to_bottom(executed: tuple[NotebookNode, float]) -> None:
    notebook, seconds = executed
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    errors = [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    assert errors == []
    figures = [output for cell in code_cells for output in cell.outputs if "image/png" in output.get("data", {})]
    # the profile's histograms, examples per country, countries per song, correlations, the box plot
    assert len(figures) >= 5
    assert seconds < MAX_SECONDS
    print(f"notebook executed in {seconds:.1f} s")


def test_notebook_figures_are_the_project_functions(executed: tuple[NotebookNode, float], jukebox_spec) -> None:
    notebook, _ = executed
    summary = json.loads(stdout_of(tagged_cell(notebook, "summary")))
    # the same rows through the same functions here, so the notebook computed with them, not with a copy
    raw = load_raw_data(jukebox_spec, rows=ROWS)
    wrangled, _ = wrangle(raw, jukebox_spec, "test")
    labelled, _ = label_examples(wrangled, jukebox_spec, "test")
    train, validation, test, _ = split_examples(labelled, jukebox_spec, "test")

    assert summary["use_case"] == "jukebox"
    assert summary["source"].startswith("generator:jukebox (rows=20000")
    assert (summary["raw_rows"], summary["wrangled_rows"], summary["labelled_rows"]) == (
        ROWS,
        len(wrangled),
        len(labelled),
    )
    assert summary["split_rows"] == {"train": len(train), "validation": len(validation), "test": len(test)}
    assert sum(summary["split_rows"].values()) == summary["labelled_rows"] <= summary["wrangled_rows"]
    assert summary["groups_in_two_splits"] == 0

    classes = jukebox_spec.target.classes
    assert summary["classes"] == classes
    assert list(summary["label_counts"]) == classes
    assert summary["label_counts"] == labelled["country"].value_counts().reindex(classes).to_dict()
    assert min(summary["label_counts"].values()) > 0 and sum(summary["label_counts"].values()) == len(labelled)
    assert summary["display_names"] == dict(zip(classes, class_display_names(jukebox_spec), strict=True))
    assert summary["display_names"]["BR"] == "Brazil"

    leak = summary["leak"]
    assert leak["grouped_split_seen_share"] == 0.0
    assert leak["random_split_seen_share"] > 0.95  # nearly every validation song is also in training
    assert 0.0 < leak["grouped_top_k_accuracy"] <= 1.0 and 0.0 <= leak["random_top_k_accuracy"] <= 1.0
    assert leak["grouped_top_k_accuracy"] != leak["random_top_k_accuracy"]
