"""Confidence intervals by resampling slides (patients), not cells.

Cells of one slide are not independent: they share a patient, a stain and a microscope. So each
resample draws as many slides as the test split holds, with replacement, and takes every cell of
each drawn slide as often as the slide was drawn. The interval is the percentile interval of the
resampled metric; resamples where a metric is undefined (no parasitized cell drawn, say) are left
out of that metric's interval and counted.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Metrics = Callable[[np.ndarray], dict[str, np.ndarray]]

_CHUNK_CELLS = 500_000  # weights held in memory at once (resamples x cells): ~4 MB, a few copies of it


def slide_draws(slides: np.ndarray, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(resamples, slides) counts of how often each slide was drawn, and each cell's slide index:
    `draws[:, index]` weighs every cell by its slide's count."""
    names, index = np.unique(np.asarray(slides), return_inverse=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(resamples, len(names)))
    draws = np.zeros((resamples, len(names)))
    np.add.at(draws, (np.arange(resamples)[:, None], picks), 1)
    return draws, index


def intervals(metrics: Metrics, slides: np.ndarray, resamples: int, confidence: float,
              seed: int) -> dict[str, tuple[float, float, int]]:
    """{metric: (lower, upper, resamples where it was defined)} over slide resamples.

    `metrics(weights)` computes every metric for each row of a (k, cells) weight matrix.
    """
    rows = max(1, _CHUNK_CELLS // max(1, len(slides)))
    draws, index = slide_draws(slides, resamples, seed)
    values: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, rows):
        for name, v in metrics(draws[start:start + rows][:, index]).items():
            values.setdefault(name, []).append(v)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for name, parts in values.items():
        v = np.concatenate(parts)
        v = v[~np.isnan(v)]
        if len(v) == 0:
            out[name] = (float("nan"), float("nan"), 0)
        else:
            low, high = np.percentile(v, [tail, 100 - tail])
            out[name] = (float(low), float(high), len(v))
    return out
