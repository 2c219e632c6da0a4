"""Binary classification metrics, computed for many weightings of the same cells at once.

Parasitized is the positive class: sensitivity is the share of parasitized cells found,
specificity the share of uninfected cells left alone, PPV the share of cells called parasitized
that are. Every function takes `weights` of shape (k, cells) and returns k values, so the point
estimate (one row of ones) and a bootstrap (one row of draw counts per resample) share one code
path. A metric that is undefined for a weighting (no positives, say) is NaN.
"""

from __future__ import annotations

import numpy as np

NAMES = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1", "mcc",
         "roc_auc", "pr_auc", "brier", "ece")


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def counts(weights: np.ndarray, positive: np.ndarray, called: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted tp, fp, fn, tn for true classes `positive` and calls `called` (both boolean)."""
    return {
        "tp": weights @ (positive & called),
        "fp": weights @ (~positive & called),
        "fn": weights @ (positive & ~called),
        "tn": weights @ (~positive & ~called),
    }


def from_counts(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The metrics that depend on the calls only."""
    tp, fp, fn, tn = (c[k].astype(np.float64) for k in ("tp", "fp", "fn", "tn"))
    sensitivity, specificity = _div(tp, tp + fn), _div(tn, tn + fp)
    return {
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": _div(tp, tp + fp),
        "npv": _div(tn, tn + fn),
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        "mcc": _div(tp * tn - fp * fn, np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))),
    }


def _tie_groups(prob: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The cells' order by probability and the start of each run of equal probabilities in it."""
    order = np.argsort(-prob if descending else prob, kind="stable")
    p = prob[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    return order, starts


def roc_auc(weights: np.ndarray, positive: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Area under the ROC curve: the chance that a positive outranks a negative (ties count half)."""
    order, starts = _tie_groups(prob, descending=False)
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return _div(np.sum(pos * (below + neg / 2), axis=1), pos.sum(axis=1) * neg.sum(axis=1))


def pr_auc(weights: np.ndarray, positive: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Average precision: precision at each threshold weighted by the recall it adds (as scikit-learn)."""
    order, starts = _tie_groups(prob, descending=True)
    w = weights[:, order]
    tp = np.cumsum(np.add.reduceat(w * positive[order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w * ~positive[order], starts, axis=1), axis=1)
    recall = _div(tp, tp[:, -1:])
    gained = np.diff(np.nan_to_num(recall), axis=1, prepend=0.0)
    ap = np.sum(gained * np.nan_to_num(_div(tp, tp + fp)), axis=1)
    return np.where(tp[:, -1] > 0, ap, np.nan)


def brier(weights: np.ndarray, positive: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Mean squared difference between P(Parasitized) and the truth (0 or 1)."""
    return _div(weights @ (prob - positive) ** 2, weights.sum(axis=1))


def bin_of(prob: np.ndarray, bins: int) -> np.ndarray:
    """Each probability's bin among `bins` equal-width bins over [0, 1]."""
    return np.minimum((prob * bins).astype(int), bins - 1)


def ece(weights: np.ndarray, positive: np.ndarray, prob: np.ndarray, bins: int) -> np.ndarray:
    """Expected calibration error of P(Parasitized): over equal-width bins, the cell-weighted mean
    gap between the mean probability and the share of parasitized cells."""
    member = bin_of(prob, bins)[:, None] == np.arange(bins)
    gap = weights @ (member * prob[:, None]) - weights @ (member * positive[:, None])
    return _div(np.abs(gap).sum(axis=1), weights.sum(axis=1))


def all_metrics(weights: np.ndarray, positive: np.ndarray, prob: np.ndarray, threshold: float,
                bins: int) -> dict[str, np.ndarray]:
    """Every metric in NAMES, for each row of `weights`."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    positive = np.asarray(positive, dtype=bool)
    prob = np.asarray(prob, dtype=np.float64)
    out = from_counts(counts(weights, positive, prob >= threshold))
    out["roc_auc"] = roc_auc(weights, positive, prob)
    out["pr_auc"] = pr_auc(weights, positive, prob)
    out["brier"] = brier(weights, positive, prob)
    out["ece"] = ece(weights, positive, prob, bins)
    return {name: out[name] for name in NAMES}
