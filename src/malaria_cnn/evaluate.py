"""Score a model on held-out cells: metrics, the confusion table and the ROC curve.

Parasitized is the positive class: sensitivity is the share of parasitized cells found,
specificity the share of uninfected cells left alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from malaria_cnn.labels import CLASS_NAMES, POSITIVE

_EPS = 1e-7  # as Keras clips probabilities in its cross-entropy


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 6) if b else None


def scores(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict:
    """Metrics for labels `y` and P(Parasitized) `prob`, calling a cell Parasitized at prob >= threshold."""
    y = np.asarray(y) == POSITIVE
    pred = prob >= threshold
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    precision, sensitivity = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    both = y.any() and (~y).any()
    p_true = np.clip(np.where(y, prob, 1 - prob), _EPS, 1 - _EPS)
    return {
        "accuracy": _ratio(tp + tn, len(y)),
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": round(float(roc_auc_score(y, prob)), 6) if both else None,
        "loss": round(float(-np.mean(np.log(p_true))), 6),
        "threshold": threshold,
        "counts": {"cells": len(y), "tp": tp, "fp": fp, "tn": tn, "fn": fn},
    }


def confusion_rows(y: np.ndarray, prob: np.ndarray, threshold: float) -> list[tuple[str, str]]:
    """(actual, predicted) class names per cell, for DVC's confusion template."""
    pred = np.where(prob >= threshold, POSITIVE, 1 - POSITIVE)
    return [(CLASS_NAMES[a], CLASS_NAMES[b]) for a, b in zip(y, pred)]


def roc_rows(y: np.ndarray, prob: np.ndarray) -> list[tuple[float, float, float]]:
    """(fpr, tpr, threshold) along the ROC curve; empty when the cells hold one class only."""
    y = np.asarray(y) == POSITIVE
    if y.all() or not y.any():
        return []
    fpr, tpr, thr = roc_curve(y, prob, drop_intermediate=True)
    thr = np.minimum(thr, 1.0)  # sklearn puts +inf first
    return [(round(float(a), 6), round(float(b), 6), round(float(c), 6)) for a, b, c in zip(fpr, tpr, thr)]


def summary(m: dict) -> str:
    def fmt(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (
        f"evaluate: {m['counts']['cells']} test cells: accuracy {fmt(m['accuracy'])}, "
        f"sensitivity {fmt(m['sensitivity'])}, specificity {fmt(m['specificity'])}, ROC AUC {fmt(m['roc_auc'])}"
    )
