"""The false-call rate of a slide: the share of its cells labelled Uninfected that the model calls Parasitized.

Parasitized is the positive class; a cell is called Parasitized when P(Parasitized) >= threshold. The
cells' accuracy hides how false calls gather on a few slides: a cell accuracy of 0.95 coexisted with
one held-out slide at 54% false calls (benchmarks/README.md). The summary (median, 90th percentile, max and the
worst slide) counts only slides with at least MIN_UNINFECTED uninfected cells, since a rate over 3
cells is noise; the per-slide rows list every slide's rate, empty where it has no uninfected cell.
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.evaluation import gallery

MIN_UNINFECTED = 10  # uninfected cells a slide needs to count in the summary
COLUMNS = ["uninfected", "false_call_rate"]  # the per-slide table's columns (metrics/slides.csv)
NO_SLIDE = f"no slide has at least {MIN_UNINFECTED} uninfected cells"


def per_slide(y: np.ndarray, prob: np.ndarray, slides: np.ndarray,
              threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slide names in np.unique order, uninfected cells, uninfected cells called Parasitized) per slide."""
    names, index = np.unique(np.asarray(slides), return_inverse=True)
    negative = np.asarray(y) != POSITIVE
    false = negative & (np.asarray(prob) >= threshold)
    uninfected = np.bincount(index, weights=negative, minlength=len(names)).astype(int)
    return names, uninfected, np.bincount(index, weights=false, minlength=len(names)).astype(int)


def rates(uninfected: np.ndarray, false_calls: np.ndarray) -> np.ndarray:
    """false_calls / uninfected per slide; NaN where a slide has no uninfected cell."""
    return np.where(uninfected > 0, false_calls / np.maximum(uninfected, 1), np.nan)


def slide_rows(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> list[tuple]:
    """Per slide, in name order: COLUMNS (the rate is "" where the slide has no uninfected cell)."""
    _, uninfected, false = per_slide(y, prob, slides, threshold)
    return [(int(n), "" if np.isnan(r) else round(float(r), 6)) for n, r in zip(uninfected, rates(uninfected, false))]


def worst(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> tuple[str, int, int] | None:
    """(name, uninfected cells, false calls) of the counted slide with the highest rate (ties to the first
    by name), or None when no slide has MIN_UNINFECTED uninfected cells."""
    names, uninfected, false = per_slide(y, prob, slides, threshold)
    rate = np.where(uninfected >= MIN_UNINFECTED, rates(uninfected, false), -1.0)
    i = int(np.argmax(rate)) if len(rate) else 0
    return None if not len(rate) or rate[i] < 0 else (str(names[i]), int(uninfected[i]), int(false[i]))


def summary(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> dict:
    """Flat keys for metrics.json: the median, 90th percentile (linear) and max false-call rate over the
    slides with at least MIN_UNINFECTED uninfected cells, how many those are, and the worst one's name;
    None (and 0 slides) when no slide counts."""
    _, uninfected, false = per_slide(y, prob, slides, threshold)
    counted = rates(uninfected, false)[uninfected >= MIN_UNINFECTED]
    top = worst(y, prob, slides, threshold)

    def stat(fn) -> float | None:
        return round(float(fn(counted)), 6) if len(counted) else None

    return {"false_call_rate_median": stat(np.median), "false_call_rate_p90": stat(lambda r: np.percentile(r, 90)),
            "false_call_rate_max": stat(np.max), "false_call_rate_slides": int(len(counted)),
            "false_call_worst_slide": None if top is None else top[0]}


def describe(s: dict, prefix: str = "", median: bool = True) -> str:
    """`median x%, 90th percentile y%, max z% (slide S)` from summary()'s keys (under `prefix`)."""
    if not s.get(f"{prefix}false_call_rate_slides"):
        return NO_SLIDE
    parts = ([("median", "median")] if median else []) + [("90th percentile", "p90"), ("max", "max")]
    figures = ", ".join(f"{label} {s[f'{prefix}false_call_rate_{key}']:.1%}" for label, key in parts)
    return f"{figures} (slide {s[f'{prefix}false_call_worst_slide']})"


def worst_slide_sheet(x, y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, n: int,
                      columns: int = 8) -> np.ndarray:
    """The worst slide's false calls, most confident first, at most `n`, captioned with p and slide; a
    sheet that says "none" when no slide counts or the worst slide has no false call. `x` gives crops by
    index (x[i])."""
    top = worst(y, prob, slides, threshold)
    if top is None:
        return gallery.contact_sheet(f"False calls of uninfected cells: {NO_SLIDE}", [("", [])], columns)
    name, uninfected, false = top
    prob = np.asarray(prob)
    picked = np.flatnonzero((np.asarray(slides) == name) & (np.asarray(y) != POSITIVE) & (prob >= threshold))
    picked = picked[np.argsort(-prob[picked], kind="stable")][:n]
    tiles = [(x[int(i)], f"p={prob[i]:.3f}", f"slide {slides[i]}") for i in picked]
    title = (f"Worst slide {name}: false-call rate {false / uninfected:.1%}, {false} of {uninfected} uninfected "
             f"cells called Parasitized at threshold {threshold:.3f} (p = P(Parasitized))")
    rows = [("", tiles[i:i + columns]) for i in range(0, len(tiles), columns)] or [("", [])]
    return gallery.contact_sheet(title, rows, columns)
