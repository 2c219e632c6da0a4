"""Shared fixtures: the project's root and small synthetic data sets."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"
STARTED = time.time()  # files tests leave in test-output/ for a person to look at are listed at the end
CLI = Path(sys.executable).parent / "malaria-cnn"


def run_cli(*args, cwd) -> subprocess.CompletedProcess:
    """Run the `malaria-cnn` command as a user would, capturing its output."""
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def committed_params() -> str:
    """params.yaml as committed, not as an experiment applied to the workspace (`dvc exp run` writes
    its -S values there) left it; the file itself outside a git checkout."""
    try:
        return subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return (ROOT / "params.yaml").read_text()


def assert_same_metrics(command: dict, stage: dict) -> None:
    """`malaria-cnn evaluate`'s metrics.json equals the evaluate stage's: every key, floats to 1e-5."""
    assert command.keys() == stage.keys()
    for key, value in stage.items():
        if isinstance(value, float):
            assert command[key] == pytest.approx(value, abs=1e-5), key
        else:
            assert command[key] == value, key


def pytest_terminal_summary(terminalreporter):
    """List what this run left in test-output/ (tests may run in worker processes: look at the files)."""
    for path in sorted((ROOT / "test-output").glob("*")):
        if path.stat().st_mtime >= STARTED:
            terminalreporter.write_line(f"kept for inspection: {path}")


@pytest.fixture(scope="session")
def small_cells():
    """A few dozen synthetic cells (all of them, decoded), shared by the tests that only read them."""
    from malaria_cnn.core.params import SyntheticParams
    from malaria_cnn.data.sources import synthetic

    return synthetic.cells(SyntheticParams(per_class=30, slides=6, seed=7))


@pytest.fixture
def nih_dev_zip() -> Path:
    if not SHARED_DEV_ZIP.is_file():
        pytest.skip(f"the NIH dev crops are not here ({SHARED_DEV_ZIP}); CI provides them")
    return SHARED_DEV_ZIP


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A tiny untrained compact network (24x24) saved as the pipeline saves one, with a threshold of 0.5."""
    from malaria_cnn.core.params import CompactNetParams, ModelParams, ThresholdParams
    from malaria_cnn.evaluation import operating_point
    from malaria_cnn.training import model_io, networks

    where = tmp_path_factory.mktemp("models")
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=24)
    model_io.save(model, where / "model.keras")
    operating_point.save(where / "threshold.json", 0.5, ThresholdParams(), where / "model.keras", {})
    return where


def dark_patch_cells(n=32, size=16, seed=0):
    """(x, y): n random crops, every other one Parasitized and marked by a dark patch a network learns fast."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = (np.arange(n) % 2).astype(np.uint8)
    x[y == 1, 4:8, 4:8] = 0
    return x, y


def slide_rule():
    """A slide rule as the threshold stage stores one: cells counted from 0.5, boundary 10%, uncertain band
    0.3-0.7 (at most 20% of an OOF slide's cells in it), OOF sensitivity 0.9, false-call rates 0-4/70; cells
    flagged for review from 0.6 (at most 25% of a slide's cells), holding 90% of the parasites (lower bound 80%)."""
    from malaria_cnn.evaluation import patients
    from malaria_cnn.evaluation.parasitemia import ErrorRates
    from malaria_cnn.evaluation.review import ReviewSet

    rates = ErrorRates((70,) * 10, (0, 1, 1, 1, 2, 0, 4, 1, 0, 2), (30,) * 10, (27,) * 10)
    review = ReviewSet(threshold=0.6, min_share=0.0, recall=0.9, recall_lower=0.8, healthy_median=0.01, healthy_p90=0.03,
                       healthy_max=0.05, confidence=0.95)
    return patients.SlideRule(boundary=0.1, count_threshold=0.5, band=(0.3, 0.7), band_limit=0.2, flag_limit=0.25,
                              rates=rates, review=review, confidence=0.95)


@pytest.fixture(scope="session")
def ruled_model_dir(model_dir, tmp_path_factory) -> Path:
    """model_dir's model with a slide rule beside it (slide_rule(), flagging the top 30% of each photo too)."""
    import dataclasses
    import shutil

    from malaria_cnn.evaluation import patients

    where = tmp_path_factory.mktemp("ruled") / "models"
    shutil.copytree(model_dir, where)
    rule = slide_rule()  # the briefly trained model scores every cell near 0.5: the top 30% of each photo flagged
    rule = dataclasses.replace(rule, review=dataclasses.replace(rule.review, min_share=0.3))
    patients.save(where / "slide_rule.json", rule, {}, where / "model.keras")
    return where


@pytest.fixture(scope="module")
def scoring(ruled_model_dir):
    """ruled_model_dir's model loaded as `serve` loads it (the in-process serve tests)."""
    import argparse

    from malaria_cnn.release.options import scorer

    return scorer(argparse.Namespace(model=str(ruled_model_dir / "model.keras"), threshold=None, threshold_file=None,
                                     batch_size=64))


@pytest.fixture(scope="session")
def fields():
    """Three synthetic smear photos: 36 cells each, about 40% placed against a neighbour, one white cell."""
    from malaria_cnn.screening.synthetic_field import make_field

    return {f"field_{seed}.png": make_field(seed) for seed in range(3)}
