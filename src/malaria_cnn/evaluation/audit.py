"""Label audit: the crops whose label the out-of-fold models contradict most confidently.

Confident learning (cleanlab's `find_label_issues`) flags a crop when its OOF probabilities put it
among the examples likely mislabelled, given the class-conditional noise it estimates from all
OOF predictions; flagged crops are ranked by self-confidence (the OOF probability of the given
label), lowest first. A list for a microscopist to review, not a verdict.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.evaluation import gallery

COLUMNS = ["rank", "file", "slide", "label", "p_parasitized", "p_given_label"]


def label_issues(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Indices of the flagged crops, most suspect first."""
    from cleanlab.filter import find_label_issues  # imported here: it takes seconds

    if len(np.unique(y)) < 2:
        return np.zeros(0, np.int64)
    pred_probs = np.stack([1 - prob, prob], axis=1)
    return np.asarray(find_label_issues(labels=y, pred_probs=pred_probs, return_indices_ranked_by="self_confidence",
                                        n_jobs=1), np.int64)


def rows(oof: dict[str, np.ndarray], flagged: np.ndarray) -> list[tuple]:
    """One row per flagged crop: rank, file, slide, given label, P(Parasitized), P(given label)."""
    out = []
    for rank, i in enumerate(flagged, 1):
        p = float(oof["prob"][i])
        given = p if oof["y"][i] == POSITIVE else 1 - p
        out.append((rank, oof["file"][i], oof["slide"][i], CLASS_NAMES[oof["y"][i]], round(p, 6), round(given, 6)))
    return out


def sheet(crops: np.ndarray, table: list[tuple], n_flagged: int, n_cells: int, columns: int = 8) -> np.ndarray:
    """A contact sheet of the first crops of `table` (rows as `rows` gives them), in its order."""
    tiles = [(crop, f"#{r[0]} {r[3][:5]} p={r[4]:.2f}", f"slide {r[2]}") for crop, r in zip(crops, table)]
    title = (f"Label audit: {n_flagged} of {n_cells} crops whose label the out-of-fold models contradict "
             f"(most confident first; p = P(Parasitized))")
    grid = [("", tiles[i:i + columns]) for i in range(0, len(tiles), columns)] or [("", [])]
    return gallery.contact_sheet(title, grid, columns)


def read_flagged(path: str | Path) -> set[str]:
    """The files a label-issues CSV flags."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {row["file"] for row in csv.DictReader(fh)}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the oof stage first (dvc repro)") from None
