"""Score a model on held-out cells: metrics with slide-bootstrap intervals, per-slide rows, curves.

Parasitized is the positive class throughout (see metrics.py). The threshold comes from the
validation split (threshold.py); nothing here is tuned on the cells it scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.evaluation import bootstrap, metrics


def _num(v: float) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v), 6)


def report(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, cfg: EvaluateParams) -> dict:
    """metrics.json: each metric, its interval from `cfg.bootstrap` slide resamples, and the counts.

    Keys are flat (`sensitivity`, `sensitivity_ci_lower`, `sensitivity_ci_upper`, ...) so that
    `dvc metrics show` and `dvc exp show` print each metric beside its interval.
    """
    positive = np.asarray(y) == POSITIVE
    prob = np.asarray(prob, dtype=np.float64)

    def compute(weights):
        return metrics.all_metrics(weights, positive, prob, threshold, cfg.calibration_bins)

    point = {name: v[0] for name, v in compute(np.ones((1, len(y)))).items()}
    ci = bootstrap.intervals(compute, slides, cfg.bootstrap, cfg.confidence, cfg.seed)
    out: dict = {}
    for name in metrics.NAMES:
        low, high, _ = ci[name]
        out[name] = _num(point[name])
        out[f"{name}_ci_lower"] = _num(low)
        out[f"{name}_ci_upper"] = _num(high)
    called = prob >= threshold
    out["threshold"] = round(float(threshold), 6)
    out["cells"] = int(len(y))
    out["slides"] = int(len(np.unique(slides)))
    out["counts"] = {k: int(v[0]) for k, v in metrics.counts(np.ones((1, len(y))), positive, called).items()}
    undefined = {name: cfg.bootstrap - ci[name][2] for name in metrics.NAMES if ci[name][2] < cfg.bootstrap}
    if undefined:
        out["resamples_undefined"] = undefined
    return out


def per_slide_rows(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> list[tuple]:
    """(slide, cells, parasitized, called_parasitized, correct, accuracy, mean_probability) per slide."""
    positive, called = np.asarray(y) == POSITIVE, prob >= threshold
    rows = []
    for s in np.unique(slides):
        sel = slides == s
        n, correct = int(sel.sum()), int(np.sum(positive[sel] == called[sel]))
        rows.append((s, n, int(positive[sel].sum()), int(called[sel].sum()), correct, round(correct / n, 6),
                     round(float(prob[sel].mean()), 6)))
    return rows


def confusion_rows(y: np.ndarray, prob: np.ndarray, threshold: float) -> list[tuple[str, str]]:
    """(actual, predicted) class names per cell, for DVC's confusion templates."""
    pred = np.where(prob >= threshold, POSITIVE, 1 - POSITIVE)
    return [(CLASS_NAMES[a], CLASS_NAMES[b]) for a, b in zip(y, pred)]


def _rounded(*columns) -> list[tuple[float, ...]]:
    return [tuple(round(float(v), 6) for v in row) for row in zip(*columns)]


def roc_rows(y: np.ndarray, prob: np.ndarray) -> list[tuple[float, float, float]]:
    """(fpr, tpr, threshold) along the ROC curve; empty when the cells hold one class only."""
    positive = np.asarray(y) == POSITIVE
    if positive.all() or not positive.any():
        return []
    fpr, tpr, thr = roc_curve(positive, prob, drop_intermediate=True)
    return _rounded(fpr, tpr, np.minimum(thr, 1.0))  # sklearn puts +inf first


def pr_rows(y: np.ndarray, prob: np.ndarray) -> list[tuple[float, float, float]]:
    """(recall, precision, threshold) along the precision-recall curve; empty without parasitized cells."""
    positive = np.asarray(y) == POSITIVE
    if not positive.any():
        return []
    precision, recall, thr = precision_recall_curve(positive, prob, drop_intermediate=True)
    return _rounded(recall[:-1], precision[:-1], thr)  # the last point (recall 0, precision 1) has no threshold


def calibration_rows(y: np.ndarray, prob: np.ndarray, bins: int) -> list[tuple]:
    """(bin_low, bin_high, cells, mean_probability, fraction_parasitized, perfect) per non-empty bin.

    `perfect` repeats mean_probability: plotted against it, it draws the diagonal of a perfectly
    calibrated model.
    """
    positive = np.asarray(y) == POSITIVE
    which = metrics.bin_of(np.asarray(prob, dtype=np.float64), bins)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            mean_p = round(float(prob[sel].mean()), 6)
            rows.append((round(b / bins, 6), round((b + 1) / bins, 6), int(sel.sum()), mean_p,
                         round(float(positive[sel].mean()), 6), mean_p))
    return rows


def summary(m: dict, cfg: EvaluateParams, split: str = "test") -> str:
    """One line: sensitivity, specificity and ROC AUC with their intervals."""

    def fmt(name):
        v, lo, hi = m[name], m[f"{name}_ci_lower"], m[f"{name}_ci_upper"]
        if v is None:
            return f"{name.replace('_', ' ')} n/a"
        ci = f" ({lo:.3f}-{hi:.3f})" if lo is not None else ""
        return f"{name.replace('roc_auc', 'ROC AUC')} {v:.3f}{ci}"

    pct = round(cfg.confidence * 100)
    return (f"evaluate: {m['cells']} {split} cells from {m['slides']} slides at threshold {m['threshold']:.3f}: "
            f"{fmt('sensitivity')}, {fmt('specificity')}, {fmt('roc_auc')} "
            f"[{pct}% CI over {cfg.bootstrap} slide resamples]")
