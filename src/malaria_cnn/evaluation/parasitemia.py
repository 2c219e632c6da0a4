"""Parasitemia corrected for the cell classifier's errors, with an interval that carries every doubt.

The share q of a slide's cells called parasitized mixes the parasitemia pi with two errors: parasitized
cells missed (sensitivity Se < 1) and uninfected cells called (false-call rate f = 1 - specificity):
q = pi Se + (1 - pi) f. Rogan and Gladen's estimator undoes them: pi = (q - f) / (Se - f), clipped to
[0, 1]. The point estimate uses Se and f pooled over the out-of-fold (OOF) slides' cells.

Se and f are not one number each: they vary from slide to slide (stain, focus, debris), and the OOF
slides measure them with noise. So the interval is a Monte Carlo one, each draw taking
- q from the slide's own cells: Beta(k + 1/2, n - k + 1/2) (Jeffreys) at the slide's effective cell
  count, its cells divided by the design effect between its photos when photos are given (cells of one
  photo share a field, a focus and a patch of stain: they are clusters, not independent cells);
- f as a slide never seen would have it: one OOF slide drawn at random, then its rate with the doubt of
  its few cells, Beta(false calls + 1/2, uninfected - false calls + 1/2) (a beta-binomial fitted to the
  slides smoothed away the rare hard slide, and held-out healthy slides were then called infected);
- Se likewise, from an OOF slide with parasitized cells;
and the interval is the draws' percentiles. A healthy slide's interval therefore reaches 0 unless it has
more false calls than the OOF healthy cells make, however many cells it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from malaria_cnn.core.labels import POSITIVE

DRAWS = 4000  # Monte Carlo draws behind an interval: its ends move by about 0.1 percentage point between seeds


@dataclass(frozen=True)
class ErrorRates:
    """The cell classifier's errors, slide by slide, where it was measured (the OOF slides): per slide
    with uninfected cells, those cells and its false calls; per slide with parasitized cells, those cells
    and how many were called. A slide with one or two parasitized cells (a smear photo) is a draw of its
    own, its few cells' doubt carried by the draw's Beta: pooled with others, it would hide the spread
    between photos."""

    uninfected: tuple[int, ...]
    false_calls: tuple[int, ...]
    parasitized: tuple[int, ...]
    detected: tuple[int, ...]

    @classmethod
    def measure(cls, y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> ErrorRates:
        names, index = np.unique(np.asarray(slides), return_inverse=True)
        positive, called = np.asarray(y) == POSITIVE, np.asarray(prob) >= threshold

        def count(mask):
            return np.bincount(index, weights=mask, minlength=len(names)).astype(int)

        neg, fp, pos, tp = count(~positive), count(~positive & called), count(positive), count(positive & called)
        return cls(*_measured(neg, fp), *_measured(pos, tp))

    @property
    def usable(self) -> bool:
        """Whether both rates were measured on at least one slide (else nothing can be corrected)."""
        return bool(self.uninfected) and bool(self.parasitized)

    @property
    def sensitivity(self) -> float:
        return sum(self.detected) / sum(self.parasitized)

    @property
    def false_call_rate(self) -> float:
        return sum(self.false_calls) / sum(self.uninfected)

    def draws(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(Se, f) as `size` new slides might have them (one_slide)."""
        return (one_slide(self.detected, self.parasitized, rng, size),
                one_slide(self.false_calls, self.uninfected, rng, size))

    def as_dict(self) -> dict:
        return {"uninfected": list(self.uninfected), "false_calls": list(self.false_calls),
                "parasitized": list(self.parasitized), "detected": list(self.detected)}


def _measured(totals: np.ndarray, hits: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(totals, hits) of the slides with at least one cell of the class."""
    some = totals > 0
    return tuple(int(v) for v in totals[some]), tuple(int(v) for v in hits[some])


def one_slide(hits, totals, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` rates of new slides: each a measured slide's, drawn at random, with the doubt of its few cells
    (Beta(hits + 1/2, misses + 1/2)). Keeps the heavy tail of the rare hard slide that a fitted spread smooths away."""
    i = rng.integers(0, len(totals), size)
    hits, totals = np.asarray(hits, float)[i], np.asarray(totals, float)[i]
    return rng.beta(hits + 0.5, totals - hits + 0.5)


@dataclass(frozen=True)
class Estimate:
    called: float  # the share of cells called parasitized
    corrected: float  # Rogan-Gladen's parasitemia, clipped to [0, 1]
    lower: float  # the corrected parasitemia's interval
    upper: float


def detection_limit(rates: ErrorRates, confidence: float, seed: int = 0) -> float:
    """The least parasitemia whose counted share clears the false calls of all but the (1 - confidence) / 2
    most error-prone new slides even on a slide of low sensitivity: the high quantile of the drawn f over
    the low quantile of the drawn Se (a slide of pooled sensitivity would understate it). Counting alone
    tells no lower parasitemia from none, however many cells are counted; the fitting picks the counting
    threshold that makes it lowest (fit_rule.count_threshold)."""
    se, f = rates.draws(np.random.default_rng(seed), DRAWS)
    tail = (1 - confidence) / 2
    return float(np.quantile(f, 1 - tail) / np.quantile(se, tail))


def rogan_gladen(q, sensitivity, false_call_rate):
    """(q - f) / (Se - f) clipped to [0, 1]; 0 where Se <= f (a classifier no better than chance says nothing)."""
    q, se, f = np.asarray(q, float), np.asarray(sensitivity, float), np.asarray(false_call_rate, float)
    informative = se > f
    pi = np.where(informative, (q - f) / np.where(informative, se - f, 1.0), 0.0)
    return np.clip(pi, 0.0, 1.0)


def estimate(called: int, cells: int, rates: ErrorRates, confidence: float, effective: float | None = None,
             seed: int = 0) -> Estimate:
    """The corrected parasitemia of `cells` cells of which `called` are called parasitized, with its
    `confidence` interval; `effective`: their effective count (intervals.effective_size) when they come in photos."""
    if cells <= 0:
        return Estimate(*(float("nan"),) * 4)
    q = called / cells
    if not rates.usable:
        return Estimate(q, float("nan"), float("nan"), float("nan"))
    n = float(cells if effective is None else min(effective, cells))
    rng = np.random.default_rng(seed)
    q_draws = rng.beta(q * n + 0.5, (1 - q) * n + 0.5, DRAWS)
    se, f = rates.draws(rng, DRAWS)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(rogan_gladen(q_draws, se, f), [tail, 100 - tail])
    return Estimate(q, float(rogan_gladen(q, rates.sensitivity, rates.false_call_rate)), float(low), float(high))
