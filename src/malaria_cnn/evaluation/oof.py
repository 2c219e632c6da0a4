"""Out-of-fold (OOF) predictions: every held-out cell scored once, by the fold model that never saw it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES

COLUMNS = ["file", "label", "slide", "fold", "p_parasitized"]


def gather(fold_files: list[Path], files: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """The fold models' OOF rows in the order of `files`, checked: each of `files` exactly once, scored by
    the fold `folds` gives it, and nothing else.
    """
    rows: dict[str, dict] = {}
    for path in fold_files:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["file"] in rows:
                    raise UserError(f"{row['file']} is scored by folds {rows[row['file']]['fold']} and {row['fold']}")
                rows[row["file"]] = row
    expected = dict(zip(files, folds))
    if set(rows) != set(expected) or any(int(rows[f]["fold"]) != k for f, k in expected.items()):
        raise UserError("the fold models' out-of-fold cells do not match data/split/splits.csv: run `dvc repro`")
    return _arrays([rows[f] for f in files if f in rows])


def write(dest: str | Path, oof: dict[str, np.ndarray]) -> None:
    rows = zip(oof["file"], (CLASS_NAMES[i] for i in oof["y"]), oof["slide"], oof["fold"], oof["prob"])
    atomic.write_csv(dest, COLUMNS, rows)


def read(path: str | Path) -> dict[str, np.ndarray]:
    """The OOF predictions written by `write`."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the oof stage first (dvc repro)") from None
    return _arrays(rows)


def _arrays(rows: list[dict]) -> dict[str, np.ndarray]:
    """CSV rows (COLUMNS) as arrays: file, y (label index), slide, fold, prob."""
    return {
        "file": np.array([r["file"] for r in rows]),
        "y": np.array([CLASS_NAMES.index(r["label"]) for r in rows], np.int64),
        "slide": np.array([r["slide"] for r in rows]),
        "fold": np.array([int(r["fold"]) for r in rows], np.int64),
        "prob": np.array([float(r["p_parasitized"]) for r in rows]),
    }
