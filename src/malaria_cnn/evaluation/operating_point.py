"""The decision threshold: chosen by a rule on out-of-fold predictions, stored beside the model.

A cell is called Parasitized when P(Parasitized) >= threshold. The rules (params `threshold.*`):
- `sensitivity`: the highest specificity among thresholds whose sensitivity reaches
  `min_sensitivity` (missing an infected cell costs more than a second look at a clean one);
- `youden`: the highest sensitivity + specificity - 1;
- `f1`: the highest F1 (the harmonic mean of precision and recall): at the 1-2% prevalence of a smear's
  cells it weighs the false calls that a sensitivity floor ignores;
- `count`: as many cells called as are labelled Parasitized (precision = recall), so the share called is the
  parasitemia, unbiased where it was chosen;
- `fixed`: `value`, whatever the validation split says.
Ties go to the lowest threshold, the one that finds the most parasitized cells. A chosen
threshold sits halfway between the lowest score it calls Parasitized and the next lower score, so
it does not rest on one cell's exact score. The test split never takes part. `fold_report` shows
how firmly the rule stands: each fold scored at the threshold the other folds choose.
"""

from __future__ import annotations

import dataclasses
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
    tp, fp, n_pos = sensitivity * positive.sum(), (1 - specificity) * (~positive).sum(), positive.sum()
    if p.rule == "sensitivity":
        score = np.where(sensitivity >= p.min_sensitivity - 1e-12, specificity, -1.0)
    elif p.rule == "f1":
        score = 2 * tp / (tp + fp + n_pos)
    elif p.rule == "count":
        score = -np.abs(tp + fp - n_pos)
    else:
        score = sensitivity + specificity - 1
    # Ties go to the lowest threshold, which finds the most parasitized cells.
    k = int(np.flatnonzero(score == score.max())[-1])
    below = scores[k + 1] if k + 1 < len(scores) else 0.0
    return float((scores[k] + below) / 2)


def per_source(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, sources: np.ndarray,
               p: ThresholdParams) -> dict[str, dict]:
    """Each source's own threshold, by rule `p.per_source` on its cells alone, with what it gives there
    (on_split, with precision and the cells called against those labelled Parasitized); {} with rule none.
    A source without both classes gets none (`threshold` None, and why)."""
    if p.per_source == "none":
        return {}
    rule = dataclasses.replace(p, rule=p.per_source)
    out = {}
    for name in sorted(set(sources)):
        sel = sources == name
        positive = np.asarray(y)[sel] == POSITIVE
        if positive.all() or not positive.any():
            out[str(name)] = {"threshold": None, "rule": p.per_source,
                              "why": "its out-of-fold cells are all of one class"}
            continue
        t = choose(y[sel], prob[sel], rule)
        out[str(name)] = {"threshold": t, "rule": p.per_source, **on_split(y[sel], prob[sel], slides[sel], t),
                          **calls(y[sel], prob[sel], t)}
    return out


def calls(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict:
    """The precision of the cells a threshold calls Parasitized, how many it calls and how many are labelled so."""
    positive, called = np.asarray(y) == POSITIVE, np.asarray(prob) >= threshold
    return {"precision": round(float(np.mean(positive[called])), 6) if called.any() else None,
            "called": int(called.sum()), "labelled_parasitized": int(positive.sum())}


def describe_source(name: str, own: dict) -> str:
    """One source's own threshold (per_source's entry) in a few words."""
    if own["threshold"] is None:
        return f"source {name}: none of its own ({own['why']})"
    return (f"source {name}: threshold {own['threshold']:.4f} by rule {own['rule']} on its {own['cells']} out-of-fold "
            f"cells (sensitivity {own['sensitivity']:.3f}, precision {own['precision'] or 0:.3f}, {own['called']} "
            f"called vs {own['labelled_parasitized']} labelled parasitized)")


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


def fold_report(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, folds: np.ndarray, p: ThresholdParams) -> dict:
    """For each fold, the threshold the rule picks on the other folds and what it gives on this one;
    then the mean, standard deviation and minimum of those sensitivities and specificities."""
    per_fold = []
    for k in np.unique(folds):
        rest, this = folds != k, folds == k
        threshold = choose(y[rest], prob[rest], p)
        per_fold.append({"fold": int(k), "threshold": round(threshold, 6),
                         **on_split(y[this], prob[this], slides[this], threshold)})
    out: dict = {"folds": per_fold}
    for name in ("sensitivity", "specificity"):
        values = np.array([f[name] for f in per_fold if f[name] is not None], float)
        for stat, fn in (("mean", np.mean), ("sd", np.std), ("min", np.min)):
            out[f"{name}_{stat}"] = round(float(fn(values)), 6) if len(values) else None
    return out


def save(path: str | Path, threshold: float, p: ThresholdParams, model_path: str | Path, chosen_on: dict,
         folds: dict | None = None, sources: dict | None = None) -> None:
    """Write the threshold with the rule that chose it, what it gave where it was chosen, how it fared
    fold by fold, each source's own (per_source), and the checksum of the model it belongs to."""
    atomic.write_json(path, {
        "threshold": threshold,
        "rule": p.rule,
        "min_sensitivity": p.min_sensitivity if p.rule == "sensitivity" else None,
        "model_sha256": file_sha256(model_path),
        "chosen_on": chosen_on,
        "fold_by_fold": folds,
        **({"by_source": sources} if sources else {}),
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


def load(path: str | Path, model_path: str | Path, source: str | None = None) -> float:
    """The stored threshold, checked against the model it was chosen for; with `source`, that training
    source's own (per_source)."""
    return pick(load_record(path, model_path), path, source)


def pick(stored: dict, path: str | Path, source: str | None = None) -> float:
    """A loaded threshold file's threshold (load_record), or with `source` that source's own; one line if it has
    none."""
    if source is None:
        return float(stored["threshold"])
    mine = stored.get("by_source", {})
    if source not in mine:
        have = ", ".join(mine) or "none: the model was trained on one source, or with threshold.per_source none"
        raise UserError(f"--source {source}: {path} has no threshold of that source (its sources: {have})")
    if mine[source]["threshold"] is None:
        raise UserError(f"--source {source}: no threshold of its own ({mine[source]['why']}); leave --source out")
    return float(mine[source]["threshold"])


def cv_metrics(threshold: float, chosen_on: dict, report: dict | None) -> dict:
    """metrics/cv.json: the threshold, what it gives out of fold, and its fold-by-fold spread (flat keys)."""
    out = {"threshold": round(threshold, 6), "oof_cells": chosen_on["cells"], "oof_slides": chosen_on["slides"],
           "folds": chosen_on["folds"], "oof_sensitivity": chosen_on["sensitivity"],
           "oof_specificity": chosen_on["specificity"]}
    if report:
        out.update({f"fold_{k}": v for k, v in report.items() if k != "folds"})
    return out


def summary(threshold: float, rule: str, chosen_on: dict, report: dict | None) -> str:
    """One line: the threshold, where it was chosen, and how it fared fold by fold."""
    def num(v):
        return "n/a" if v is None else f"{v:.3f}"

    where = (f"{chosen_on['cells']} out-of-fold cells from {chosen_on['slides']} slides" if chosen_on["folds"] > 1
             else f"{chosen_on['cells']} val cells from {chosen_on['slides']} slides")
    line = (f"threshold: {threshold:.4f} by rule {rule} on {where} (sensitivity {num(chosen_on['sensitivity'])}, "
            f"specificity {num(chosen_on['specificity'])})")
    if report:
        line += (f"; fold by fold at the other folds' threshold: sensitivity {num(report['sensitivity_mean'])} "
                 f"+- {num(report['sensitivity_sd'])} (min {num(report['sensitivity_min'])}), specificity "
                 f"{num(report['specificity_mean'])} +- {num(report['specificity_sd'])}")
    return line
