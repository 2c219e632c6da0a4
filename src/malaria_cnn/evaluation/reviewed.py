"""The review simulated wherever labels exist: the labels answer for the person, so that the evaluate stage,
`malaria-cnn evaluate` and `malaria-cnn screen --truth` report what a review of the flagged cells
(review.py) would give, slide by slide and pooled: how many cells it asks for, how many of the labelled
parasites it holds (its recall), the answer after it against the truth, and the detection limit it reaches.
A reviewer who answers every flagged cell as labelled is a perfect one: these figures are the model's and
the review set's, not a person's.
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.evaluation.intervals import korn_graubard
from malaria_cnn.evaluation.patients import Answer, Review, Slide, SlideRule, slide_metrics
from malaria_cnn.evaluation.patients import describe as slides_described

# per slide: labelled parasites, those flagged, flagged cells per 1,000, the answer after review and its reason
COLUMNS = ["parasites_labelled", "parasites_flagged", "flagged_per_1000", "answer_after_review", "reason_after_review"]
PREFIX = "reviewed_"  # of the pooled figures' keys


def review_of(y: np.ndarray, flagged: np.ndarray) -> Review:
    """Every flagged cell answered by its label."""
    y, flagged = np.asarray(y), np.asarray(flagged, bool)
    return Review(parasitized=int(np.sum(flagged & (y == POSITIVE))), answered=int(flagged.sum()))


def slide(rule: SlideRule, s: Slide, y: np.ndarray, prob: np.ndarray, parasites: int | None = None,
          flagged: np.ndarray | None = None) -> tuple[Answer, tuple]:
    """The answer after a labelled review of one slide (`s`, its found cells' labels `y` and scores `prob`),
    and its COLUMNS; `parasites`: the slide's labelled parasites when some were never found (photos);
    `flagged`: its cells flagged, when they were flagged photo by photo (else as one slide of crops)."""
    flagged = rule.review.flagged(prob) if flagged is None else flagged
    r = review_of(y, flagged)
    labelled = int(np.sum(np.asarray(y) == POSITIVE)) if parasites is None else parasites
    a = rule.answer(s, r)
    per_1000 = round(1000 * r.answered / s.cells, 3) if s.cells else ""
    return a, (labelled, r.parasitized, per_1000, a.answer, a.reason)


def slides(rule: SlideRule, y: np.ndarray, prob: np.ndarray, names: np.ndarray,
           unlike: list[str] | None = None) -> tuple[list[Answer], list[tuple]]:
    """`slide` for each slide of crops, in np.unique order; `unlike`: each slide's stain referral reason."""
    order, index = np.unique(np.asarray(names), return_inverse=True)
    y, prob = np.asarray(y), np.asarray(prob, float)
    out = [slide(rule, rule.slide(prob[index == i], unlike=(unlike or [""] * len(order))[i]), y[index == i],
                 prob[index == i]) for i in range(len(order))]
    return [a for a, _ in out], [row for _, row in out]


def summary(infected: np.ndarray, answers: list[Answer], rows: list[tuple], cells: np.ndarray,
            confidence: float) -> dict:
    """The pooled figures (keys prefixed PREFIX): the answers after review against the truth (slide_metrics),
    the review set's recall of the labelled parasites with its Korn-Graubard interval over slides, its size
    (flagged cells per 1,000) at the median and 90th percentile, on every slide and on the healthy ones, and
    the detection limit reached at the median slide."""
    infected, cells = np.asarray(infected, bool), np.asarray(cells, float)
    labelled = np.array([r[0] for r in rows], float)
    found = np.array([r[1] for r in rows], float)
    share = np.array([a.flagged for a in answers], float) / np.maximum(cells, 1)
    out = slide_metrics(infected, [a.answer for a in answers], confidence, prefix=PREFIX)
    low, high = korn_graubard(found, labelled, confidence) if labelled.sum() else (np.nan, np.nan)
    out[f"{PREFIX}recall"] = round(float(found.sum() / labelled.sum()), 6) if labelled.sum() else None
    out[f"{PREFIX}recall_ci_lower"] = None if np.isnan(low) else round(low, 6)
    out[f"{PREFIX}recall_ci_upper"] = None if np.isnan(high) else round(high, 6)
    for name, sel in (("", np.ones(len(share), bool)), ("healthy_", ~infected)):
        for q, label in ((0.5, "median"), (0.9, "p90")):
            v = float(np.quantile(share[sel], q)) * 1000 if sel.any() else None
            out[f"{PREFIX}{name}flagged_per_1000_{label}"] = None if v is None else round(v, 3)
    limits = [a.review_limit for a in answers if not np.isnan(a.review_limit)]
    out[f"{PREFIX}limit_median"] = round(float(np.median(limits)), 6) if limits else None
    return out


def describe(m: dict) -> str:
    """summary in a few words."""
    recall, low, high = (m[f"{PREFIX}recall{s}"] for s in ("", "_ci_lower", "_ci_upper"))
    said = "n/a" if recall is None else f"{recall:.3f}" + ("" if low is None else f" ({low:.3f}-{high:.3f})")
    return (f"after review of the flagged cells ({m[f'{PREFIX}flagged_per_1000_median']} per 1,000 at the median "
            f"slide, holding {said} of the labelled parasites): {slides_described(m, prefix=PREFIX)}")
