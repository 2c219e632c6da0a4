"""Everything an evaluation writes, from labels, probabilities and slides: the evaluate stage and the
`malaria-cnn evaluate` command both write through here, so the two agree on the same cells."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic, paths
from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.data import images, stain
from malaria_cnn.evaluation import evaluate, false_calls, gallery, gradcam, operating_point, patients, reviewed

SLIDES_HEADER = ["slide", "cells", "parasitized", "called_parasitized", "correct", "accuracy", "mean_probability",
                 "infected", *patients.SLIDE_COLUMNS, *reviewed.COLUMNS, *false_calls.COLUMNS]


@dataclass(frozen=True)
class Outputs:
    metrics: Path
    per_slide: Path
    confusion: Path
    roc: Path
    pr: Path
    calibration: Path
    gallery: Path
    gradcam: Path
    false_calls: Path

    @classmethod
    def pipeline(cls) -> Outputs:
        """Where the evaluate stage writes (dvc.yaml lists the same)."""
        return cls(*map(Path, (paths.METRICS, paths.PER_SLIDE, paths.CONFUSION, paths.ROC, paths.PR,
                               paths.CALIBRATION, paths.GALLERY, paths.GRADCAM, paths.FALSE_CALLS)))

    @classmethod
    def under(cls, folder: str | Path) -> Outputs:
        """The same files, by their names, in one folder (the evaluate command's --out)."""
        return cls(*(Path(folder) / Path(p).name for p in (getattr(cls.pipeline(), f.name) for f in fields(cls))))


def own_point(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, rule: patients.SlideRule,
              referred: list[str], confidence: float) -> dict:
    """A source's cells at its own threshold (sensitivity, specificity, precision, cells called against those
    labelled parasitized) and its slides answered by its own rule (patients.slide_metrics)."""
    _, answers = rule.answers(prob, slides)
    answers = patients.with_referrals(answers, referred)
    after, rows = reviewed.slides(rule, y, prob, slides, referred)
    at = operating_point.on_split(y, prob, slides, threshold)
    infected = patients.infected_slides(y, slides)
    _, cells, _ = patients.counts(prob, slides, threshold)
    return {"threshold": round(threshold, 6), "sensitivity": at["sensitivity"], "specificity": at["specificity"],
            **operating_point.calls(y, prob, threshold),
            **patients.slide_metrics(infected, [a.answer for a in answers], confidence),
            **reviewed.summary(infected, after, rows, cells, confidence)}


def write(out: Outputs, y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float,
          rule: patients.SlideRule, cfg: EvaluateParams, x, model, densities: np.ndarray | None = None,
          stain_range: stain.StainRange | None = None, sources: np.ndarray | None = None,
          points: dict[str, tuple[float, patients.SlideRule]] | None = None) -> dict:
    """Write every output; return metrics.json's content. `x` is the crops, or anything that gives
    them by index (x[i], x[[i, j]], x.shape): only the few shown in the sheets are taken. With the cells'
    optical `densities` and the model's `stain_range`, each slide whose stain is unlike the training
    slides' is referred (its cells stay in every cell figure: these are labelled cells, scored to measure
    the model). With each cell's data `sources` (several), metrics.json gives every figure per source as well,
    under `by_source`, and with `points` (a source's own threshold and slide rule) what that point gives on
    the source's cells and slides (own_point)."""
    names, answers = rule.answers(prob, slides)
    referred = stain.referrals(stain_range if densities is not None else None, densities, slides, names)
    answers = patients.with_referrals(answers, referred)
    after, review_rows = reviewed.slides(rule, y, prob, slides, referred)
    m = evaluate.report(y, prob, slides, threshold, cfg, rule, answers, (after, review_rows))
    m["slides_stain_referred"] = sum(map(bool, referred))
    if sources is not None and len(set(sources)) > 1:
        m["by_source"] = {}
        for source in sorted(set(sources)):
            sel = sources == source
            mine = np.isin(names, slides[sel])  # a slide belongs to one source (ingest names it so)
            part = evaluate.report(y[sel], prob[sel], slides[sel], threshold, cfg, rule,
                                   [a for a, k in zip(answers, mine) if k],
                                   ([a for a, k in zip(after, mine) if k], [r for r, k in zip(review_rows, mine) if k]))
            part["slides_stain_referred"] = sum(bool(r) for r, k in zip(referred, mine) if k)
            if str(source) in (points or {}):
                part["own_point"] = own_point(y[sel], prob[sel], slides[sel], *points[str(source)],
                                              [r for r, k in zip(referred, mine) if k], cfg.confidence)
            m["by_source"][str(source)] = part
    atomic.write_json(out.metrics, m)
    infected = patients.infected_slides(y, slides)
    per_slide = [row + (int(sick),) + a.row() + r + fc for row, sick, a, r, fc in zip(
        evaluate.per_slide_rows(y, prob, slides, threshold), infected, answers, review_rows,
        false_calls.slide_rows(y, prob, slides, threshold))]
    atomic.write_csv(out.per_slide, SLIDES_HEADER, per_slide)
    atomic.write_csv(out.confusion, ["actual", "predicted"], evaluate.confusion_rows(y, prob, threshold))
    atomic.write_csv(out.roc, ["fpr", "tpr", "threshold"], evaluate.roc_rows(y, prob))
    atomic.write_csv(out.pr, ["recall", "precision", "threshold"], evaluate.pr_rows(y, prob))
    atomic.write_csv(out.calibration, ["bin_low", "bin_high", "cells", "mean_probability", "fraction_parasitized",
                                       "perfect"], evaluate.calibration_rows(y, prob, cfg.calibration_bins))
    sheet = gallery.mistakes_sheet(x, y, prob, slides, threshold, cfg.gallery)
    atomic.write_bytes(out.gallery, images.encode_png(sheet))
    sheet = gradcam.gradcam_sheet(model, x, y, prob, slides, threshold, cfg.gradcam)
    atomic.write_bytes(out.gradcam, images.encode_png(sheet))
    sheet = false_calls.worst_slide_sheet(x, y, prob, slides, threshold, cfg.gallery)
    atomic.write_bytes(out.false_calls, images.encode_png(sheet))
    return m
