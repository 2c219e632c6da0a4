"""The decision threshold: chosen on the validation split by a rule, stored beside the model.

A cell is called Parasitized when P(Parasitized) >= threshold. The rules (params `threshold.*`):
- `sensitivity`: the highest specificity among thresholds whose sensitivity reaches
  `min_sensitivity` (missing an infected cell costs more than a second look at a clean one);
- `youden`: the highest sensitivity + specificity - 1;
- `fixed`: `value`, whatever the validation split says.
Ties go to the lowest threshold, the one that finds the most parasitized cells. A chosen
threshold sits halfway between the lowest validation score it calls Parasitized and the next
lower score, so it does not rest on one cell's exact score. The test split never takes part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.atomic import file_sha256
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.core.params import ThresholdParams
from malaria_cnn.evaluation import metrics


def choose(y: np.ndarray, prob: np.ndarray, p: ThresholdParams) -> float:
    """The threshold `p.rule` picks for labels `y` and P(Parasitized) `prob` of the validation split."""
    if p.rule == "fixed":
        return p.value
    positive = np.asarray(y) == POSITIVE
    if positive.all() or not positive.any():
        raise UserError(f"threshold.rule {p.rule} needs both classes in the validation split; "
                        "use more slides or threshold.rule=fixed")
    sensitivity, specificity, scores = rates(positive, prob)
    if p.rule == "sensitivity":
        score = np.where(sensitivity >= p.min_sensitivity - 1e-12, specificity, -1.0)
    else:
        score = sensitivity + specificity - 1
    # Ties go to the lowest threshold, which finds the most parasitized cells.
    k = int(np.flatnonzero(score == score.max())[-1])
    below = scores[k + 1] if k + 1 < len(scores) else 0.0
    return float((scores[k] + below) / 2)


def rates(positive: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sensitivity, specificity, threshold) at each distinct score taken as the threshold, highest first.

    One sort and two cumulative sums: O(N log N) time and O(N) memory, however many distinct scores.
    """
    scores, group = np.unique(prob, return_inverse=True)
    tp = np.cumsum(np.bincount(group, weights=positive, minlength=len(scores))[::-1])
    fp = np.cumsum(np.bincount(group, weights=~positive, minlength=len(scores))[::-1])
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return tp / n_pos, (n_neg - fp) / n_neg, scores[::-1]


def on_split(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> dict:
    """Cells, slides, and the sensitivity and specificity a threshold gives on one split."""
    positive = np.asarray(y) == POSITIVE
    at = metrics.from_counts(metrics.counts(np.ones((1, len(prob))), positive, prob >= threshold))
    out = {"cells": int(len(prob)), "slides": int(len(np.unique(slides)))}
    for name in ("sensitivity", "specificity"):
        v = float(at[name][0])
        out[name] = None if np.isnan(v) else round(v, 6)
    return out


def save(path: str | Path, threshold: float, p: ThresholdParams, model_path: str | Path, validation: dict) -> None:
    """Write the threshold with the rule that chose it and the checksum of the model it belongs to."""
    atomic.write_json(path, {
        "threshold": threshold,
        "rule": p.rule,
        "min_sensitivity": p.min_sensitivity if p.rule == "sensitivity" else None,
        "model_sha256": file_sha256(model_path),
        "validation": validation,
    })


def load_record(path: str | Path, model_path: str | Path) -> dict:
    """The stored threshold file; one clear error when it is missing, malformed or for another model."""
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        threshold = float(stored["threshold"])
        sha = stored["model_sha256"]
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `dvc repro` to choose the model's threshold") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a threshold file written by this project") from None
    if not 0 <= threshold <= 1:
        raise UserError(f"{path}: threshold {threshold} is not between 0 and 1")
    if sha != file_sha256(model_path):
        raise UserError(f"{path} was chosen for another model than {model_path}: run `dvc repro`")
    return stored


def load(path: str | Path, model_path: str | Path) -> float:
    """The stored threshold, checked against the model it was chosen for."""
    return float(load_record(path, model_path)["threshold"])
