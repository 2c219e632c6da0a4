"""`malaria-cnn evaluate`: labelled crops scored as the evaluate stage scores the test split."""

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import CompactNetParams, EvaluateParams, ModelParams, PreprocessParams, ThresholdParams
from malaria_cnn.data import archive, cells_npz, images, manifest, stain
from malaria_cnn.data.preprocess import preprocess
from malaria_cnn.data.slides import slide_of
from malaria_cnn.evaluation import operating_point, outputs, patients
from malaria_cnn.training import model_io, networks

import browser
from conftest import ROOT, assert_same_metrics, slide_rule

CLI = Path(sys.executable).parent / "malaria-cnn"
SIZE = 24
RULE = slide_rule()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_cells):
    where = tmp_path_factory.mktemp("models")
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=SIZE)
    model_io.save(model, where / "model.keras")
    operating_point.save(where / "threshold.json", 0.5, ThresholdParams(), where / "model.keras", {})
    patients.save(where / "slide_rule.json", RULE, {}, where / "model.keras")
    narrow(small_cells).save(where / "stain_range.json", where / "model.keras")
    return where


def narrow(cells) -> stain.StainRange:
    """A stain range as tight as the cells' median stain, with no margin: most slides fall outside it."""
    typical = np.log(np.median([images.read_cell(c.read(), SIZE)[1] for c in cells], axis=0))
    return stain.StainRange(tuple(typical - 0.01), tuple(typical + 0.01), margin=0.0, slides=1)


@pytest.fixture(scope="module")
def labelled_zip(tmp_path_factory, small_cells):
    where = tmp_path_factory.mktemp("crops")
    archive.write(where / "crops.zip", [(c.member, c.read()) for c in small_cells])
    return where / "crops.zip"


def _run(*args, cwd):
    return subprocess.run([str(CLI), "evaluate", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_command_agrees_with_the_evaluate_stage_on_the_same_cells(tmp_path, model_dir, labelled_zip, small_cells):
    result = _run(labelled_zip, "--model", model_dir / "model.keras", "--out", "report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the stage's way: the archive and manifest ingest writes, preprocess's npz, the same outputs
    manifest.write(tmp_path / "manifest.csv", [manifest.ManifestRow(c.member, c.label, slide_of(c.member),
                                                                    manifest.sha256(c.read())) for c in small_cells])
    preprocess(labelled_zip, tmp_path / "manifest.csv", tmp_path / "cells.npz", tmp_path / "rejects.csv",
               PreprocessParams(image_size=SIZE, workers=1))
    cells = cells_npz.load(tmp_path / "cells.npz")
    model = model_io.load(model_dir / "model.keras")
    prob = model_io.parasitized_probability(model, cells["x"], 256)
    stage = outputs.write(outputs.Outputs.under(tmp_path / "stage"), cells["y"], prob, cells["slide"], 0.5,
                          RULE, EvaluateParams(), cells["x"], model, cells["density"],
                          narrow(small_cells))
    command = json.loads((tmp_path / "report/metrics.json").read_text())
    assert_same_metrics(command, stage)
    assert command["cells"] == len(small_cells) == stage["cells"]
    ours, theirs = (list(csv.reader(open(tmp_path / d / "slides.csv"))) for d in ("report", "stage"))
    assert ours[0] == theirs[0] and len(ours) == len(theirs) == 7
    head = ours[0]
    assert head[-9:] == ["answer", "reason", "parasites_labelled", "parasites_flagged", "flagged_per_1000",
                         "answer_after_review", "reason_after_review", "uninfected", "false_call_rate"]
    answer, reason = head.index("answer"), head.index("reason")
    text = {answer, reason, head.index("answer_after_review"), head.index("reason_after_review")}
    stained = [r for r in ours[1:] if r[reason].startswith("stain unlike the training data: ")]
    assert 0 < command["slides_stain_referred"] == stage["slides_stain_referred"] == len(stained)
    assert all(r[answer] == "refer" for r in stained) and command["slides_referred"] >= len(stained)
    for a, b in zip(ours[1:], theirs[1:]):  # the same up to float32's last digit in the mean probability
        assert a[0] == b[0] and [v == "" for v in a] == [v == "" for v in b], (a, b)
        assert [a[i] for i in sorted(text)] == [b[i] for i in sorted(text)]  # the answers, and why
        numbers = [i for i in range(1, len(head)) if i not in text]
        assert np.allclose(np.float64([a[i] or "nan" for i in numbers]), np.float64([b[i] or "nan" for i in numbers]),
                           atol=2e-6, equal_nan=True), (a, b)
    assert sum(int(row[-2]) for row in ours[1:]) == sum(c.label == "Uninfected" for c in small_cells)
    assert "false_call_rate_max" in command and (tmp_path / "report/false_calls.png").stat().st_size > 0
    assert (tmp_path / "report/confusion.csv").read_text() == (tmp_path / "stage/confusion.csv").read_text()
    line = result.stdout.strip()
    assert line.startswith(f"evaluate: {len(small_cells)} labelled cells from 6 slides at threshold 0.500:")
    assert "among the slides called" in line and " referred (rate " in line and line.endswith("report/index.html")
    assert "WARNING: intervals unreliable: 6 slides, fewer than evaluate.min_slides (10)" in line
    assert f", {command['slides_stain_referred']} of them for a stain unlike the training data (slides.csv says why)" in line


def test_the_page_renders_offline_with_every_plot(tmp_path, model_dir, labelled_zip):
    result = _run(labelled_zip, "--model", model_dir / "model.keras", "--out", "report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = tmp_path / "report" / "index.html"
    document = browser.dom(page)
    browser.screenshot(page, ROOT / "test-output" / "evaluate-page.png", height=3200)
    assert browser.page_errors(document) == [] and 'data-loaded="true"' in document
    assert browser.rendered_plots(document) == 7  # two confusion matrices, ROC, PR, calibration, two per slide
    assert document.count('<img src="mistakes.png"') == 1 and document.count('<img src="gradcam.png"') == 1
    assert document.count('<img src="false_calls.png"') == 1
    assert "intervals unreliable: 6 slides" in document and "slide sensitivity" in document
    assert "Uninfected cells called parasitized, per slide: no slide has at least 10 uninfected" in document
    assert "slide(s) with a stain unlike the training data: referred to a microscopist" in document
    assert "Each slide's answer" in document and document.count("<strong>refer</strong>") >= 5  # one row a slide
    assert "slide refer rate" in document


def test_rejects_and_exit_codes_are_predicts(tmp_path, model_dir, small_cells):
    crops = tmp_path / "crops.zip"
    with zipfile.ZipFile(crops, "w") as zf:
        for c in small_cells[:10] + small_cells[-10:]:
            zf.writestr(c.member, c.read())
        zf.writestr(f"cell_images/{CLASS_NAMES[0]}/broken.png", b"\x89PNG broken")
        zf.writestr("loose.png", small_cells[0].read())
        zf.writestr(f"cell_images/{small_cells[-1].label}/again.png", small_cells[-1].read())  # a duplicate
    result = _run(crops, "--model", model_dir / "model.keras", "--out", "r", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "20 labelled cells" in result.stdout and "2 rejected, 1 duplicates or label conflicts left out" in result.stdout
    rejects = (tmp_path / "r/rejects.csv").read_text()
    assert "broken.png,not a readable image" in rejects and "loose.png,not inside a folder named" in rejects
    one = tmp_path / "one.png"
    one.write_bytes(small_cells[0].read())
    result = _run(one, "--model", model_dir / "model.keras", "--out", "r", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "not a folder or a zip" in result.stderr


def test_scoring_keeps_no_crop_in_memory(tmp_path, model_dir, small_cells, monkeypatch):
    """Each crop is decoded once to be scored; only the few the sheets show are decoded again."""
    from malaria_cnn.core.params import Params
    from malaria_cnn.data import images
    from malaria_cnn.release import cli, evaluate_command, options

    archive.write(tmp_path / "crops.zip", [(c.member, c.read()) for c in small_cells])
    calls = []
    real = images.read_cell  # every decode of a crop for the model goes through it
    monkeypatch.setattr(images, "read_cell", lambda *a, **k: calls.append(1) or real(*a, **k))
    args = cli._parser().parse_args(["evaluate", str(tmp_path / "crops.zip"), "--model", str(model_dir / "model.keras"),
                                     "--out", str(tmp_path / "r"), "--batch-size", "8"])
    monkeypatch.setattr(options, "project_params", lambda: Params())
    assert evaluate_command.evaluate_command(args) == 0
    shown = 2 * EvaluateParams().gallery + 4 * EvaluateParams().gradcam  # mistakes, false calls, Grad-CAM
    assert len(small_cells) <= len(calls) <= len(small_cells) + shown


def test_no_usable_crop_is_a_usage_error_whose_reasons_are_written(tmp_path, model_dir):
    crops = tmp_path / "crops.zip"
    with zipfile.ZipFile(crops, "w") as zf:
        zf.writestr(f"cell_images/{CLASS_NAMES[0]}/broken.png", b"\x89PNG broken")
    result = _run(crops, "--model", model_dir / "model.keras", "--out", "report", cwd=tmp_path)
    assert result.returncode == 2 and "no usable labelled crop" in result.stderr
    assert "broken.png" in (tmp_path / "report" / "rejects.csv").read_text()  # the file the line points to
