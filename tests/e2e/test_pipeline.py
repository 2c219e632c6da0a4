"""End to end: `dvc repro`, a no-op second repro, determinism, a param change, `dvc exp run`.

The project is copied into a temporary git repository and run with tiny params (a few dozen
cells, one epoch), so the whole test takes a couple of minutes on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from temp_repo import GIT, STAGES, make
from temp_repo import ran as _ran
from temp_repo import sh as _sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("project"))


def test_repro_runs_every_stage_and_writes_the_metrics(project):
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == STAGES
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    counts = metrics["counts"]
    assert counts["cells"] == counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"] > 0
    assert 0 <= metrics["accuracy"] <= 1 and metrics["threshold"] == 0.5
    assert metrics["accuracy"] == pytest.approx((counts["tp"] + counts["tn"]) / counts["cells"], abs=1e-6)
    for key in ("sensitivity", "specificity", "precision", "f1", "roc_auc", "loss"):
        assert key in metrics
    shown = _sh(["dvc", "metrics", "show"], project)
    assert "metrics/metrics.json" in shown and "sensitivity" in shown
    sizes = json.loads((project / "data/split/sizes.json").read_text())
    assert sum(s["slides"] for s in sizes.values()) == 6  # every slide in exactly one split


def test_second_repro_does_nothing(project):
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == [] and "Data and pipelines are up to date" in out


def test_rerun_from_scratch_gives_identical_outputs(project):
    lock = (project / "dvc.lock").read_text()
    metrics = (project / "metrics/metrics.json").read_text()
    _sh(["dvc", "repro", "--force"], project)
    assert (project / "metrics/metrics.json").read_text() == metrics
    assert (project / "dvc.lock").read_text() == lock  # same hashes: data, model and all


def test_evaluate_param_reruns_only_evaluate(project):
    text = (project / "params.yaml").read_text().replace("threshold: 0.5", "threshold: 0.3")
    (project / "params.yaml").write_text(text)
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == ["evaluate"]
    assert json.loads((project / "metrics/metrics.json").read_text())["threshold"] == 0.3


def test_plots_render(project):
    _sh(["dvc", "plots", "show", "-o", "plots_html"], project)
    html = (project / "plots_html" / "index.html").read_text()
    for title in ("Confusion matrix", "ROC curve", "Training loss (train vs validation)"):
        assert title in html


def test_exp_run_with_a_set_param_is_listed_by_exp_show(project):
    _sh([*GIT, "commit", "-qam", "after repro"], project)
    out = _sh(["dvc", "exp", "run", "-S", "epochs=2"], project)
    assert _ran(out) == ["train", "evaluate"]
    table = json.loads(_sh(["dvc", "exp", "show", "--json"], project, stdout_only=True))
    exps = [e for row in table for e in (row.get("experiments") or [])]
    assert exps, table
    data = exps[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2
    assert "accuracy" in data["metrics"]["metrics/metrics.json"]["data"]


def test_exp_run_on_real_nih_crops(project, nih_dev_zip):
    out = _sh(["dvc", "exp", "run", "-S", "data.source=zip", "-S", f"data.path={nih_dev_zip}"], project)
    assert _ran(out) == STAGES
    assert "ingest zip: 8,511 cells (5,168 Parasitized, 3,343 Uninfected) from 49 slides" in out
    sizes = json.loads((project / "data/split/sizes.json").read_text())
    assert sum(s["slides"] for s in sizes.values()) == 49  # no slide in two splits
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    assert metrics["counts"]["cells"] == sizes["test"]["Parasitized"] + sizes["test"]["Uninfected"]
