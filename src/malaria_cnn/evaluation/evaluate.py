"""Score a model on held-out cells: metrics with slide-bootstrap intervals, per-slide rows, curves.

Parasitized is the positive class throughout (see metrics.py). The threshold comes from the
out-of-fold predictions (stages/threshold.py); nothing here is tuned on the cells it scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.evaluation import bootstrap, false_calls, metrics, patients, reviewed
from malaria_cnn.evaluation.intervals import korn_graubard

# proportions of cells whose interval is Korn-Graubard's over slides: (hits, denominator) by tp, fp, fn, tn
PROPORTIONS = {"accuracy": ("tp+tn", "tp+fp+fn+tn"), "sensitivity": ("tp", "tp+fn"), "specificity": ("tn", "tn+fp"),
               "ppv": ("tp", "tp+fp"), "npv": ("tn", "tn+fn")}


def _num(v: float) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v), 6)


def report(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, cfg: EvaluateParams,
           rule: patients.SlideRule | None = None, answers: list[patients.Answer] | None = None,
           after_review: tuple[list[patients.Answer], list[tuple]] | None = None) -> dict:
    """metrics.json: each metric with its interval, the counts, the per-slide false-call rate's summary
    (false_calls.summary), and with the slide `rule` and its `answers` (one per slide, in np.unique order)
    the slide-level figures (patients.slide_metrics), and with `after_review` (the answers after a labelled
    review and their reviewed.COLUMNS rows) its figures (reviewed.summary).

    Intervals: Korn-Graubard over slides for the proportions (PROPORTIONS), the percentile interval of
    `cfg.bootstrap` slide resamples for the others; below `cfg.min_slides` slides they are marked
    unreliable (`intervals_reliable: false`). Keys are flat (`sensitivity`, `sensitivity_ci_lower`, ...)
    so that `dvc metrics show` and `dvc exp show` print each metric beside its interval.
    """
    positive = np.asarray(y) == POSITIVE
    prob = np.asarray(prob, dtype=np.float64)

    def compute(weights):
        return metrics.all_metrics(weights, positive, prob, threshold, cfg.calibration_bins)

    point = {name: v[0] for name, v in compute(np.ones((1, len(y)))).items()}
    ci = bootstrap.intervals(compute, slides, cfg.bootstrap, cfg.confidence, cfg.seed)
    undefined = {name: cfg.bootstrap - ci[name][2] for name in metrics.NAMES
                 if name not in PROPORTIONS and ci[name][2] < cfg.bootstrap}
    ci.update(_cluster_intervals(positive, prob >= threshold, slides, cfg.confidence))
    out: dict = {}
    for name in metrics.NAMES:
        low, high = ci[name][:2]
        out[name] = _num(point[name])
        out[f"{name}_ci_lower"] = _num(low)
        out[f"{name}_ci_upper"] = _num(high)
    called = prob >= threshold
    out["threshold"] = round(float(threshold), 6)
    out["cells"] = int(len(y))
    out["slides"] = int(len(np.unique(slides)))
    out["counts"] = {k: int(v[0]) for k, v in metrics.counts(np.ones((1, len(y))), positive, called).items()}
    if undefined:
        out["resamples_undefined"] = undefined
    out["intervals_reliable"] = out["slides"] >= cfg.min_slides
    out.update(false_calls.summary(y, prob, slides, threshold))
    if rule is not None and answers is not None:
        out.update(patients.slide_metrics(patients.infected_slides(y, slides), [a.answer for a in answers],
                                          cfg.confidence))
        out["slide_rule"] = rule.describe()
    if rule is not None and after_review is not None:
        _, cells, _ = patients.counts(prob, slides, threshold)
        out.update(reviewed.summary(patients.infected_slides(y, slides), *after_review, cells, cfg.confidence))
    return out


def _cluster_intervals(positive: np.ndarray, called: np.ndarray, slides: np.ndarray,
                       confidence: float) -> dict[str, tuple[float, float]]:
    """Korn-Graubard intervals of the PROPORTIONS from per-slide counts."""
    _, index = np.unique(np.asarray(slides), return_inverse=True)
    c = {name: np.bincount(index, weights=cell, minlength=index.max() + 1) for name, cell in
         (("tp", positive & called), ("fp", ~positive & called), ("fn", positive & ~called), ("tn", ~positive & ~called))}

    def total(expr: str) -> np.ndarray:
        return sum(c[k] for k in expr.split("+"))

    return {name: korn_graubard(total(h), total(n), confidence) for name, (h, n) in PROPORTIONS.items()}


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


def unreliable_note(m: dict, cfg: EvaluateParams) -> str:
    """Why the intervals must not be read as precise, or "" when there are enough slides."""
    if m.get("intervals_reliable", True):
        return ""
    return f"intervals unreliable: {m['slides']} slides, fewer than evaluate.min_slides ({cfg.min_slides})"


def fmt(m: dict, name: str, label: str | None = None) -> str:
    """`label value (lower-upper)`, or `label n/a`."""
    label = label or name.replace("_", " ").replace("roc auc", "ROC AUC")
    v, lo, hi = m.get(name), m.get(f"{name}_ci_lower"), m.get(f"{name}_ci_upper")
    if v is None:
        return f"{label} n/a"
    return f"{label} {v:.3f}" + (f" ({lo:.3f}-{hi:.3f})" if lo is not None and hi is not None else "")


def summary(m: dict, cfg: EvaluateParams, split: str = "test") -> str:
    """One line: sensitivity, specificity and ROC AUC with their intervals, the slide calls, the per-slide
    false-call rate, and a warning when the slides are too few for the intervals to mean much."""
    pct = round(cfg.confidence * 100)
    line = (f"evaluate: {m['cells']} {split} cells from {m['slides']} slides at threshold {m['threshold']:.3f}: "
            f"{fmt(m, 'sensitivity')}, {fmt(m, 'specificity')}, {fmt(m, 'roc_auc')}")
    if "slide_rule" in m:
        line += (f"; slides ({m['slides_infected']} infected, {m['slides_uninfected']} uninfected), the model "
                 f"alone: {patients.describe(m)}")
    if f"{reviewed.PREFIX}recall" in m:
        line += f"; {reviewed.describe(m)}"
    if m.get("slides_stain_referred"):
        n = m["slides_stain_referred"]
        line += f", {n} of them for a stain unlike the training data (slides.csv says why)"
    if "false_call_rate_slides" in m:
        line += f"; per-slide false calls: {false_calls.describe(m)}"
    line += f" [{pct}% CI: Korn-Graubard over slides for proportions, {cfg.bootstrap} slide resamples for the rest]"
    note = unreliable_note(m, cfg)
    line += f" WARNING: {note}" if note else ""
    for name, part in m.get("by_source", {}).items():
        line += (f"\n  source {name}: {part['cells']} cells from {part['slides']} slides: {fmt(part, 'sensitivity')}, "
                 f"{fmt(part, 'specificity')}, {fmt(part, 'ppv', 'precision')}")
        if "false_call_rate_slides" in part:
            line += f"; per-slide false calls: {false_calls.describe(part)}"
        own = part.get("own_point")
        if own:
            def num(v):
                return "n/a" if v is None else f"{v:.3f}"

            line += (f"\n    at its own threshold {own['threshold']:.3f}: sensitivity {num(own['sensitivity'])}, "
                     f"specificity {num(own['specificity'])}, precision {num(own['precision'])} ({own['called']} "
                     f"called vs {own['labelled_parasitized']} labelled parasitized); slides: {patients.describe(own)}")
    return line
