"""The slide rule (patients.SlideRule) fitted on out-of-fold (OOF) cells, in the threshold stage.

- The error rates (false calls of uninfected cells, parasitized cells found) are measured slide by slide on
  the OOF cells as they are: per class, they do not depend on a slide's mix.
- The counting threshold is the one whose counts best tell parasites from false calls (count_threshold).
- The review set is chosen on the OOF cells as they are (review.choose).
- What depends on a slide's mix, the largest shares of a slide's cells in the uncertain band and flagged for
  review, and a fitted boundary, comes from smear-like slides (smear_like.py) unless the cells come from
  smear photos already.
- `rule_out` "auto" fits the boundary: the largest whose slide sensitivity on the smear-like slides, at the
  lower end of its Wilson interval, is at least `min_sensitivity` (36 of 36 infected slides found is a
  sensitivity of 1 whose lower bound is 0.90); 0 when none holds (the model alone then never says "not
  infected").
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.evaluation import parasitemia, review, smear_like
from malaria_cnn.evaluation.parasitemia import ErrorRates
from malaria_cnn.evaluation.patients import NOT_INFECTED, REFER, SlideRule, infected_slides, slide_metrics

BAND_QUANTILE = 0.9  # the uncertain band: above this share of OOF uninfected cells, below it of parasitized ones


def count_threshold(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, confidence: float) -> float:
    """The P(Parasitized) at or above `threshold` whose count of cells best tells parasites from false calls:
    the lowest parasitemia.detection_limit, the false-call rate of an error-prone new slide over the
    sensitivity of a weak one. Above the cell threshold the false calls of hard slides fall faster than the
    parasites found (benchmarks/README.md)."""
    positive, prob = np.asarray(y) == POSITIVE, np.asarray(prob, float)
    above = np.unique(np.quantile(prob[positive & (prob >= threshold)], np.linspace(0, 0.5, 26))) \
        if np.any(positive & (prob >= threshold)) else []
    best, limit = threshold, np.inf
    for t in [threshold, *(float(v) for v in above if v > threshold)]:
        rates = ErrorRates.measure(y, prob, slides, t)
        if not rates.usable or rates.sensitivity <= 0:
            continue
        here = parasitemia.detection_limit(rates, confidence)
        if here < limit - 1e-9:
            best, limit = t, here
    return float(best)


def _largest_share(mask: np.ndarray, slides: np.ndarray) -> float:
    _, index = np.unique(slides, return_inverse=True)
    if len(index) == 0:
        return 0.0
    return float(np.max(np.bincount(index, weights=mask) / np.bincount(index)))


def choose_rule(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, confidence: float,
                min_sensitivity: float, rule_out: float | str, review_recall: float, review_share: float = 0.0,
                smear_like_slides: bool = True) -> tuple[SlideRule, dict]:
    """The slide rule fitted on these (OOF) cells, and what the model alone gives with it on the smear-like
    slides (patients.slide_metrics; on the slides as they are with `smear_like_slides` False)."""
    y, prob, slides = np.asarray(y), np.asarray(prob, float), np.asarray(slides)
    positive = y == POSITIVE
    threshold = count_threshold(y, prob, slides, threshold, confidence)
    band = (float(np.quantile(prob[~positive], BAND_QUANTILE)) if (~positive).any() else 1.0,
            float(np.quantile(prob[positive], 1 - BAND_QUANTILE)) if positive.any() else 0.0)
    flags = review.choose(y, prob, slides, review_recall, confidence, review_share)
    sy, sp, ss = smear_like.resample(y, prob, slides) if smear_like_slides else (y, prob, slides)
    band_limit = _largest_share((sp >= band[0]) & (sp < band[1]), ss) if band[0] < band[1] else 0.0
    flag_limit = max((float(np.mean(flags.flagged(sp[ss == name]))) for name in np.unique(ss)), default=0.0)
    rates = ErrorRates.measure(y, prob, slides, threshold)
    rule = SlideRule(1.0, round(threshold, 6), band, band_limit, flag_limit, rates, flags, confidence)
    _, first = rule.answers(sp, ss)  # each slide's interval once; the boundary only decides not infected or refer
    infected = infected_slides(sy, ss)
    candidates = [float(rule_out)] if rule_out != "auto" else _candidates(first, infected)
    for boundary in candidates:  # largest first: the fewest referrals whose sensitivity's lower bound holds
        answers = [NOT_INFECTED if a.answer == NOT_INFECTED and a.estimate.upper < boundary else
                   REFER if a.answer == NOT_INFECTED else a.answer for a in first]
        m = slide_metrics(infected, answers, confidence)
        low = m["slide_sensitivity_ci_lower"]
        if rule_out != "auto" or low is None or low >= min_sensitivity:
            break
    else:
        boundary = 0.0
        m = slide_metrics(infected, [REFER if a.answer == NOT_INFECTED else a.answer for a in first], confidence)
    return SlideRule(round(float(boundary), 6), round(threshold, 6), band, band_limit, flag_limit, rates, flags,
                     confidence), m


def _candidates(first: list, infected: np.ndarray) -> list[float]:
    """Boundaries worth trying, largest first: halfway between the upper ends of the slides not called
    infected, from just above the highest healthy slide's (a boundary above every healthy slide would only
    add misses) down to 0."""
    uppers = sorted({a.estimate.upper for a in first if a.answer == NOT_INFECTED} | {0.0})
    healthy = max((a.estimate.upper for a, sick in zip(first, infected) if a.answer == NOT_INFECTED and not sick),
                  default=uppers[-1])
    above = [u for u in uppers if u > healthy]
    top = (healthy + above[0]) / 2 if above else min(1.0, healthy + 0.01)
    return [top] + [(a + b) / 2 for a, b in zip(uppers[:-1], uppers[1:]) if b <= healthy][::-1] + [0.0]
