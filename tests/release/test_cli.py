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
])
def test_usage_errors_are_one_line_and_exit_code_2(tmp_path, args, message):
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_a_threshold_for_another_model_is_refused(tmp_path, model_dir, small_cells):
    other = tmp_path / "model.keras"
    model_io.save(networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(4, 8))), 24), other)
    (tmp_path / "a.png").write_bytes(small_cells[0].read())
    result = _run("predict", "a.png", "--model", other, "--threshold-file", model_dir / "threshold.json", cwd=tmp_path)
    assert result.returncode == 2 and "was chosen for another model" in result.stderr
