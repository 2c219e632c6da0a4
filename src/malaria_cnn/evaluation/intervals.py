"""Intervals for proportions that stay honest with few slides.

- `wilson`: for a proportion of independent units, such as the share of infected slides called
  infected (each slide is one patient).
- `korn_graubard`: for a proportion of cells that come in slides (clusters). The cells of one slide
  are not independent, so the interval is Clopper-Pearson's at an effective sample size: the cells
  divided by the design effect (between-slide variance over the variance of as many independent
  cells), shrunk by (t at n-1 / t at slides-1)^2 for the few degrees of freedom few slides give
  (Korn & Graubard 1998, as NCHS uses for survey proportions). Unlike a percentile bootstrap over
  4 slides (35 distinct resamples) it does not collapse to a point when every slide scores 1.0.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# The design effect of a share counted in smear photos, at least: the cells of one photo share a field, a
# focus and a patch of stain, so a slide of one photo (or of a few alike) counts for fewer independent cells
# than it has, though it cannot show that spread itself. Measured on the shared photo batches, slides of 10
# photos, the share the slide rule counts: a median design effect of 1.03-1.44 by batch and model, up to 3.4
# on one slide (benchmarks/review.py); the floor is the largest median, rounded up.
PHOTO_DESIGN_EFFECT = 1.5


def wilson(k: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson's score interval for k successes out of n independent trials; (nan, nan) when n is 0. A share
    of clustered units goes in at its effective size, k scaled with n (k > n is refused: it is a bug)."""
    if k < 0 or k > n * (1 + 1e-9):
        raise ValueError(f"wilson: {k} successes out of {n} trials")
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def effective_size(hits: np.ndarray, totals: np.ndarray, min_design_effect: float = 1.0) -> float:
    """The units of some clusters (cells of slides or photos, one count each) divided by their design
    effect: the between-cluster variance of the pooled share over that of as many independent units, at
    least `min_design_effect` (one photo, or a few alike, cannot show the spread between photos: see
    PHOTO_DESIGN_EFFECT). How many independent units they are worth, never more than they are."""
    hits, totals = np.asarray(hits, float), np.asarray(totals, float)
    hits, totals = hits[totals > 0], totals[totals > 0]
    k, n = len(totals), totals.sum()
    if k < 2 or n == 0:
        return float(n) / min_design_effect
    p = hits.sum() / n
    between = k / (k - 1) * np.sum((hits - p * totals) ** 2) / n**2  # linearised variance of the ratio
    independent = p * (1 - p) / n
    deff = 1.0 if between <= independent or independent <= 0 else between / independent
    return float(n / max(deff, min_design_effect))


def korn_graubard(hits: np.ndarray, totals: np.ndarray, confidence: float) -> tuple[float, float]:
    """Interval for sum(hits) / sum(totals), where each entry is one slide's count; slides with no
    cells in the denominator are ignored. (nan, nan) with fewer than two slides to vary over."""
    hits, totals = np.asarray(hits, float), np.asarray(totals, float)
    hits, totals = hits[totals > 0], totals[totals > 0]
    k, n = len(totals), totals.sum()
    if k < 2:
        return float("nan"), float("nan")
    p = hits.sum() / n
    n_eff = effective_size(hits, totals)
    alpha = 1 - confidence
    n_eff *= (stats.t.ppf(1 - alpha / 2, n - 1) / stats.t.ppf(1 - alpha / 2, k - 1)) ** 2
    x = p * n_eff
    low = 0.0 if x <= 0 else float(stats.beta.ppf(alpha / 2, x, n_eff - x + 1))
    high = 1.0 if x >= n_eff else float(stats.beta.ppf(1 - alpha / 2, x + 1, n_eff - x))
    return low, high
