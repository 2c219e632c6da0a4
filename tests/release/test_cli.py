import csv

import pytest

from malaria_cnn.core.params import CompactNetParams, ModelParams
from malaria_cnn.training import model_io, networks

from conftest import run_cli as _run


def test_predict_writes_a_row_per_file_and_a_summary(tmp_path, model_dir, small_cells):
    for c in small_cells[:3]:
        (tmp_path / c.member.rsplit("/", 1)[-1]).write_bytes(c.read())
    result = _run("predict", tmp_path, "--model", model_dir / "model.keras", "--out", "p.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("predict: 3 cells read, ") and "at threshold 0.500 -> p.csv" in result.stdout
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(r["label"] in ("Parasitized", "Uninfected") and not r["error"] for r in rows)


def test_a_failed_file_is_a_row_and_exit_code_1(tmp_path, model_dir, small_cells):
    (tmp_path / "good.png").write_bytes(small_cells[0].read())
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    result = _run("predict", tmp_path, "--model", model_dir / "model.keras", "--threshold", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "1 cells read, 1 Parasitized (100.0%) at threshold 0.000; 1 file failed" in result.stdout
    assert "bad.png,,,not a readable image" in (tmp_path / "predictions.csv").read_text()


@pytest.mark.parametrize("args, message", [
    (["predict", "nowhere"], "error: no such file or folder: nowhere"),
    (["predict", ".", "--model", "missing.keras"], "error: missing.keras not found"),
    (["predict", ".", "--batch-size", "0"], "error: --batch-size must be at least 1"),
    (["predict", ".", "--slide-pattern", "("], "error: --slide-pattern is not a regular expression"),
    (["evaluate", ".", "--out", "r", "--slide-pattern", "(P"], "error: --slide-pattern is not a regular expression"),
    (["evaluate", ".", "--out", "r", "--min-side", "0"], "error: --min-side must be at least 1"),
    (["predict", ".", "--out", "."], "error: --out . is a folder: give a CSV file"),
    (["screen", ".", "--out", "notes.txt"], "error: --out notes.txt is a file: give a folder"),
    (["serve", "--host", "0.0.0.0", "--no-token"], "error: --no-token is for a loopback host only: --host 0.0.0.0"),
    (["serve", "--host", "192.168.1.5", "--token", "short"], "error: --token must be at least 16 characters"),
    (["serve", "--workspace", "notes.txt"], "error: --workspace notes.txt is a file: give a folder"),
    (["serve", "--max-upload-mb", "0"], "error: --max-upload-mb must be at least 1"),
    (["serve", "--model", "missing.keras"], "error: missing.keras not found"),
])
def test_usage_errors_are_one_line_and_exit_code_2(tmp_path, args, message):
    """Before any work: no model is loaded (the default one does not exist here) and nothing is written."""
    (tmp_path / "notes.txt").write_text("")
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_a_threshold_for_another_model_is_refused(tmp_path, model_dir, small_cells):
    other = tmp_path / "model.keras"
    model_io.save(networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(4, 8))), 24), other)
    (tmp_path / "a.png").write_bytes(small_cells[0].read())
    result = _run("predict", "a.png", "--model", other, "--threshold-file", model_dir / "threshold.json", cwd=tmp_path)
    assert result.returncode == 2 and "was chosen for another model" in result.stderr


def test_by_slide_writes_a_row_per_slide_beside_the_csv(tmp_path, model_dir, small_cells):
    for i, c in enumerate(small_cells[:6]):
        (tmp_path / f"P{i % 2}_{i}.png").write_bytes(c.read())
    result = _run("predict", tmp_path, "--model", model_dir / "model.keras", "--threshold", "0", "--out", "p.csv",
                  "--by-slide", "--slide-pattern", r"^(P\d)_", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "and 2 slides -> p_slides.csv" in result.stdout and "slides not answered" in result.stdout
    with open(tmp_path / "p_slides.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["slide"], r["cells"], r["called_parasitized"], r["counted_share"]) for r in rows] == [
        ("P0", "3", "3", "1.0"), ("P1", "3", "3", "1.0")]
    assert rows[0]["parasitemia"] == rows[0]["answer"] == ""  # no slide rule beside the model: nothing corrected


def test_by_slide_answers_each_slide_with_the_rule_beside_the_model(tmp_path, ruled_model_dir, small_cells):
    """An untrained model scores every cell near 0.5, inside the rule's uncertain band: unlike any slide the
    rule was chosen on, so each slide is referred, with the reason; with --threshold 0 every cell is called
    Parasitized, but the answer counts from the rule's own threshold and stays the same."""
    for i, c in enumerate(small_cells[:8]):
        (tmp_path / f"P{i % 2}_{i}.png").write_bytes(c.read())
    for threshold in ("0", "1"):
        result = _run("predict", tmp_path, "--model", ruled_model_dir / "model.keras", "--threshold", threshold,
                      "--out", "p.csv", "--by-slide", "--slide-pattern", r"^(P\d)_", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "and 2 slides (0 infected, 0 not infected, 2 refer) -> p_slides.csv" \
            in result.stdout
        with open(tmp_path / "p_slides.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["answer"] for r in rows] == ["refer", "refer"]
        assert all("scored where the model is unsure (0.30-0.70)" in r["reason"] for r in rows)
        assert all(r["parasitemia"] != "" and float(r["parasitemia_ci_lower"]) <= float(r["parasitemia_ci_upper"])
                   for r in rows)


def test_limits_come_from_params_yaml_where_the_command_runs(tmp_path, model_dir, small_cells):
    from conftest import committed_params

    (tmp_path / "a.png").write_bytes(small_cells[0].read())
    (tmp_path / "params.yaml").write_text(committed_params().replace("min_side: 16", "min_side: 300"))
    result = _run("predict", "a.png", "--model", model_dir / "model.keras", cwd=tmp_path)
    assert result.returncode == 1 and "a.png,,,\"too small: " in (tmp_path / "predictions.csv").read_text()
    result = _run("predict", "a.png", "--model", model_dir / "model.keras", "--min-side", "8", cwd=tmp_path)
    assert result.returncode == 0


def test_by_slide_refers_a_slide_whose_stain_is_unlike_the_training_slides(tmp_path, model_dir, small_cells):
    import shutil

    import numpy as np

    from malaria_cnn.data import images, stain

    models = tmp_path / "m"
    shutil.copytree(model_dir, models)
    crops = [images.decode_rgb(c.read()) for c in small_cells[:12]]
    densities = np.stack([images.read_cell(c.read(), 24)[1] for c in small_cells[:12]])
    stain.StainRange.of_slides(densities, np.array(["train"] * 12)).save(models / "stain_range.json",
                                                                         models / "model.keras")
    (tmp_path / "in").mkdir()
    for i, rgb in enumerate(crops[:6]):
        (tmp_path / "in" / f"P0_{i}.png").write_bytes(images.encode_png(rgb))  # a stain the model knows
        darker = np.clip(np.rint(255 * (np.maximum(rgb, 1) / 255.0) ** 8), 1, 255).astype(np.uint8)
        darker[rgb.max(axis=2) < stain.BLACK] = 0  # OD 8 times as high: a far darker stain, same cells
        (tmp_path / "in" / f"P1_{i}.png").write_bytes(images.encode_png(darker))
    result = _run("predict", "in", "--model", models / "model.keras", "--out", "p.csv", "--by-slide",
                  "--slide-pattern", r"^(P\d)_", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 slide referred to a microscopist, not called (stain unlike the training data)" in result.stdout
    with open(tmp_path / "p_slides.csv") as fh:
        known, dark = csv.DictReader(fh)
    assert known["answer"] == known["reason"] == "" and known["counted_share"] != ""
    assert dark["answer"] == "refer" and dark["reason"].startswith("stain unlike the training data: ")
    assert "darker" in dark["reason"] and dark["cells"] == "6" and dark["counted_share"] == ""  # counts, no number


def test_every_command_names_slides_by_params_yaml_pattern(tmp_path, model_dir, small_cells, fields):
    """data.slide_pattern in params.yaml where the command runs, unless --slide-pattern says otherwise."""
    import cv2

    (tmp_path / "params.yaml").write_text('data:\n  slide_pattern: "^(P\\\\d+)_"\n')
    for i, f in enumerate(fields.values()):
        cv2.imwrite(str(tmp_path / f"P{i % 2}_{i}.png"), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
    result = _run("screen", *sorted(tmp_path.glob("P*.png")), "--model", model_dir / "model.keras", "--out", "s",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "s" / "slides.csv") as fh:
        assert [r["slide"] for r in csv.DictReader(fh)] == ["P0", "P1"]
    for i, c in enumerate(small_cells[:4]):
        (tmp_path / "crops").mkdir(exist_ok=True)
        (tmp_path / "crops" / f"P{i % 2}_{i}.png").write_bytes(c.read())
    result = _run("predict", "crops", "--model", model_dir / "model.keras", "--by-slide", "--out", "p.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "p_slides.csv") as fh:
        assert [r["slide"] for r in csv.DictReader(fh)] == ["P0", "P1"]


def test_screen_refuses_photos_of_more_than_max_pixels_and_checks_the_option_first(tmp_path, model_dir, fields):
    import cv2

    result = _run("screen", ".", "--max-pixels", "0", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: --max-pixels must be at least 1")
    f = next(iter(fields.values()))
    h, w = f.rgb.shape[:2]
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
    result = _run("screen", "a.png", "--model", model_dir / "model.keras", "--max-pixels", str(w * h - 1),
                  cwd=tmp_path)
    assert result.returncode == 1
    with open(tmp_path / "screened" / "images.csv") as fh:
        (row,) = csv.DictReader(fh)
    assert row["error"] == f"too large: {w}x{h} pixels is more than {w * h - 1:,}"


def test_by_slide_keeps_a_colon_in_a_file_name(tmp_path, model_dir, small_cells):
    """`P4:x.png` names slide P4 by --slide-pattern: the colon is not a zip's separator here."""
    (tmp_path / "in").mkdir()
    for i, c in enumerate(small_cells[:2]):
        (tmp_path / "in" / f"P4:{i}.png").write_bytes(c.read())
    result = _run("predict", "in", "--model", model_dir / "model.keras", "--out", "p.csv", "--by-slide",
                  "--slide-pattern", r"^(P\d):", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "p_slides.csv") as fh:
        assert [(r["slide"], r["cells"]) for r in csv.DictReader(fh)] == [("P4", "2")]


def test_source_picks_that_training_source_threshold_and_a_wrong_name_is_one_line(tmp_path, ruled_model_dir, small_cells):
    import dataclasses
    import shutil

    from malaria_cnn.core.params import ThresholdParams
    from malaria_cnn.evaluation import operating_point, patients

    from conftest import slide_rule

    models = tmp_path / "models"
    shutil.copytree(ruled_model_dir, models)
    model = models / "model.keras"
    operating_point.save(models / "threshold.json", 0.5, ThresholdParams(), model, {"cells": 1}, None,
                         {"pale": {"threshold": 0.0}, "nih": {"threshold": 1.0}})
    patients.save(models / "slide_rule.json", slide_rule(), {}, model,
                  {"pale": (dataclasses.replace(slide_rule(), count_threshold=0.0), {}),
                   "nih": (slide_rule(), {})})
    (tmp_path / "a.png").write_bytes(small_cells[0].read())
    pale = _run("predict", "a.png", "--model", model, "--source", "pale", cwd=tmp_path)
    assert pale.returncode == 0, pale.stderr
    assert "1 Parasitized (100.0%) at threshold 0.000" in pale.stdout and "note:" not in pale.stderr
    pooled = _run("predict", "a.png", "--model", model, cwd=tmp_path)
    assert "at threshold 0.500" in pooled.stdout
    assert "note: the model has a threshold and slide rule of its own for each training source (pale, nih)" in pooled.stderr
    wrong = _run("predict", "a.png", "--model", model, "--source", "dark", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert wrong.stderr.startswith("error: --source dark:") and "(its sources: pale, nih)" in wrong.stderr
