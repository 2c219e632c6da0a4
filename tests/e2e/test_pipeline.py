"""End to end: `dvc repro`, a no-op second repro, determinism, a param change, `dvc exp run`.

The project is copied into a temporary git repository and run with tiny params (a few dozen
cells, one epoch), so the whole test takes a couple of minutes on two cores.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

import browser
from conftest import ROOT, assert_same_metrics
from temp_repo import FROM_TRAIN, GIT, STAGES, make, merge
from temp_repo import ran as _ran
from temp_repo import sh as _sh

pytestmark = pytest.mark.e2e

SCREENSHOT = ROOT / "test-output" / "plots-page.png"
EVALUATE_OUTS = ["metrics/metrics.json", "metrics/slides.csv", "plots/confusion.csv", "plots/roc.csv",
                 "plots/precision_recall.csv", "plots/calibration.csv", "plots/mistakes.png", "plots/gradcam.png"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("project"))


def test_repro_runs_every_stage_and_writes_the_metrics(project):
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == STAGES
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    counts = metrics["counts"]
    assert metrics["cells"] == counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"] > 0
    assert metrics["accuracy"] == pytest.approx((counts["tp"] + counts["tn"]) / metrics["cells"], abs=1e-6)
    stored = json.loads((project / "models/threshold.json").read_text())
    assert metrics["threshold"] == pytest.approx(stored["threshold"], abs=1e-6)
    for key in ("sensitivity", "specificity", "ppv", "npv", "f1", "mcc", "roc_auc", "pr_auc", "brier", "ece"):
        assert f"{key}_ci_lower" in metrics and f"{key}_ci_upper" in metrics
    for path in EVALUATE_OUTS:
        assert (project / path).stat().st_size > 0, path
    assert re.search(r"evaluate: \d+ test cells from \d+ slides at threshold [0-9.]+: sensitivity", out)
    shown = _sh(["dvc", "metrics", "show"], project)
    assert "metrics/metrics.json" in shown and "sensitivity" in shown
    sizes = json.loads((project / "data/split/sizes.json").read_text())
    assert sum(sizes[s]["slides"] for s in ("train", "val", "test")) == 6  # every slide in exactly one split
    assert sum(f["slides"] for f in sizes["folds"]) == sizes["train"]["slides"]  # and each train slide in one fold
    with open(project / "data/oof/predictions.csv") as fh:
        assert len(list(csv.DictReader(fh))) == sizes["train"]["Parasitized"] + sizes["train"]["Uninfected"]
    cv = json.loads((project / "metrics/cv.json").read_text())
    assert cv["folds"] == 2 and cv["threshold"] == pytest.approx(stored["threshold"], abs=1e-6)
    assert "metrics/cv.json" in shown and "fold_sensitivity_mean" in shown
    assert "train@3: not used (cv.folds=2)" in out
    # the shipped model's slide answers: the rule chosen out of fold, its figures there and on the test slides
    rule = json.loads((project / "models/slide_rule.json").read_text())
    assert rule["model_sha256"] == hashlib.sha256((project / "models/model.keras").read_bytes()).hexdigest()
    assert rule["chosen_on"] == {k[4:]: v for k, v in cv.items() if k.startswith("oof_slide") and k != "oof_slides"}
    with open(project / "metrics/slides.csv") as fh:
        slides = list(csv.DictReader(fh))
    answers = [r["answer"] for r in slides]
    assert set(answers) <= {"infected", "not infected", "refer"} and all(r["reason"] for r in slides)
    assert metrics["slides_referred"] == answers.count("refer") and metrics["slide_rule"] == rule["rule"]
    for key in ("slide_sensitivity", "slide_specificity", "slide_refer_rate"):
        assert f"{key}_ci_lower" in metrics and f"{key}_ci_upper" in metrics


def test_second_repro_does_nothing(project):
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == []


def _lock_without_saved_model(project: Path) -> dict:
    """dvc.lock without the SavedModel's hash: TensorFlow writes its variables in a different order
    in every process (the TFLite files made from it do not change)."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    outs = lock["stages"]["export"]["outs"]
    lock["stages"]["export"]["outs"] = [o for o in outs if o["path"] != "models/export/saved_model"]
    assert len(outs) == len(lock["stages"]["export"]["outs"]) + 1
    return lock


def test_rerun_from_scratch_gives_identical_outputs(project):
    lock = _lock_without_saved_model(project)
    metrics = (project / "metrics/metrics.json").read_text()
    _sh(["dvc", "repro", "--force"], project)
    assert (project / "metrics/metrics.json").read_text() == metrics
    assert _lock_without_saved_model(project) == lock  # same hashes: data, model and all


def _set_params(project: Path, update: dict) -> None:
    params = merge(yaml.safe_load((project / "params.yaml").read_text()), update)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_evaluate_param_reruns_only_evaluate(project):
    _set_params(project, {"evaluate": {"bootstrap": 200}})
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == ["evaluate", "card"] and "200 slide resamples for the rest" in out


def test_threshold_rule_reruns_threshold_and_evaluate(project):
    _set_params(project, {"threshold": {"rule": "fixed", "value": 0.3}})
    out = _sh(["dvc", "repro"], project)
    assert _ran(out) == ["threshold", "evaluate", "export", "card"]  # the folds and the model stay
    assert json.loads((project / "metrics/metrics.json").read_text())["threshold"] == 0.3


def test_plots_page_renders_offline_in_a_browser(project):
    _sh(["dvc", "plots", "show", "-o", "plots_html"], project)
    page = project / "plots_html" / "index.html"
    declared = yaml.safe_load((project / "dvc.yaml").read_text())["plots"]
    titles = [next(iter(p)) for p in declared if isinstance(p, dict)]
    images = [p for p in declared if isinstance(p, str)]
    source = page.read_text()
    for title in titles:
        assert html.escape(title, quote=False) in source or title in source, title
    document = browser.dom(page)
    browser.screenshot(page, SCREENSHOT)
    assert browser.page_errors(document) == [] and 'data-loaded="true"' in document
    assert browser.rendered_plots(document) == len(titles)
    for image in images:
        assert len(re.findall(rf'<img src="[^"]*{re.escape(Path(image).name)}"', document)) == 1, image


def test_predict_command_and_exported_models(project):
    crops = project / "new_crops"
    crops.mkdir()
    shutil.copy(project / "data/raw/cell_images.zip", crops / "crops.zip")  # a zip, as a user might get one
    with zipfile.ZipFile(crops / "crops.zip") as zf:  # and a folder
        zf.extractall(crops / "folder", zf.namelist()[:3])
    out = _sh(["malaria-cnn", "predict", "new_crops/crops.zip", "new_crops/folder", "--out", "new_crops/p.csv"],
              project, stdout_only=True)
    with open(project / "new_crops/p.csv") as fh:
        rows = list(csv.DictReader(fh))
    with zipfile.ZipFile(crops / "crops.zip") as zf:
        assert len(rows) == len(zf.namelist()) + 3 and not any(r["error"] for r in rows)
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    assert out.startswith(f"predict: {len(rows)} cells read") and f"at threshold {metrics['threshold']:.3f}" in out
    exported = json.loads((project / "metrics/export.json").read_text())
    int8 = exported["tflite_int8"]
    assert int8["passed"] == (int8["agreement"] >= 0.99) and exported["tflite_float32"]["agreement"] == 1.0
    assert exported["saved_model"]["agreement"] == 1.0 and exported["input"].startswith("raw crops")
    assert exported["size_bytes"]["model_int8.tflite"] < exported["size_bytes"]["model_float32.tflite"]
    card = (project / "models/export/MODEL_CARD.md").read_text()
    assert f"{json.loads((project / 'models/threshold.json').read_text())['threshold']:.6f}" in card
    assert (project / "models/export/saved_model/saved_model.pb").is_file()
    shutil.rmtree(crops)


def test_exp_run_with_a_set_param_is_listed_by_exp_show(project):
    _sh([*GIT, "commit", "-qam", "after repro"], project)
    out = _sh(["dvc", "exp", "run", "-S", "epochs=2", "-S", "cv.folds=3"], project)
    assert _ran(out) == ["split", *FROM_TRAIN]
    assert "train@2: " in out and "train@2: not used" not in out and "train@3: not used (cv.folds=3)" in out
    table = json.loads(_sh(["dvc", "exp", "show", "--json"], project, stdout_only=True))
    exps = [e for row in table for e in (row.get("experiments") or [])]
    assert exps, table
    data = exps[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2
    assert data["params"]["params.yaml"]["data"]["cv"]["folds"] == 3
    assert "accuracy" in data["metrics"]["metrics/metrics.json"]["data"]
    assert data["metrics"]["metrics/cv.json"]["data"]["folds"] == 3


def test_exp_run_on_real_nih_crops(project, nih_dev_zip):
    out = _sh(["dvc", "exp", "run", "-S", "data.source=zip", "-S", f"data.path={nih_dev_zip}"], project)
    assert _ran(out) == STAGES
    assert "ingest zip: 8,511 cells (5,168 Parasitized, 3,343 Uninfected) from 49 slides" in out
    sizes = json.loads((project / "data/split/sizes.json").read_text())
    assert sum(sizes[s]["slides"] for s in ("train", "val", "test")) == 49  # no slide in two splits
    metrics = json.loads((project / "metrics/metrics.json").read_text())
    assert metrics["cells"] == sizes["test"]["Parasitized"] + sizes["test"]["Uninfected"]
    assert metrics["slides"] == sizes["test"]["slides"]
    assert metrics["sensitivity_ci_lower"] <= metrics["sensitivity"] <= metrics["sensitivity_ci_upper"]
    with open(project / "metrics/slides.csv") as fh:
        assert sum(int(row["cells"]) for row in csv.DictReader(fh)) == metrics["cells"]

    # `malaria-cnn evaluate` on the same test crops, as a lab would get them, reports what the stage did
    with open(project / "data/split/splits.csv") as fh:
        test_files = [row["file"] for row in csv.DictReader(fh) if row["split"] == "test"]
    with zipfile.ZipFile(nih_dev_zip) as src, zipfile.ZipFile(project / "test_crops.zip", "w") as dst:
        for name in test_files:
            dst.writestr(name, src.read(name))
    out = _sh(["malaria-cnn", "evaluate", "test_crops.zip", "--out", "lab_report"], project, stdout_only=True)
    command = json.loads((project / "lab_report/metrics.json").read_text())
    assert_same_metrics(command, metrics)
    assert command["cells"] == len(test_files) == metrics["cells"]
    assert out.startswith(f"evaluate: {len(test_files)} labelled cells from {metrics['slides']} slides")
    shutil.rmtree(project / "lab_report")
    (project / "test_crops.zip").unlink()
