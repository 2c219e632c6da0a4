"""The review set: the cells of a slide a person must see, most likely parasite first, and what seeing them
rules out.

A slide's parasitemia runs from about 0.001% to a few percent; no count of the model's calls alone tells
0.05% from none (a healthy slide's false calls vary more than that). But the model ranks: most parasites
score above most plain cells. So every cell at or above the review threshold is *flagged*, and so are the top
`min_share` of the cells of each photo (or of a slide of crops) by score, whatever their score: on a stain the
model never saw, its scores sink below the threshold while the parasites stay near the top of the ranking
(benchmarks/README.md). A person confirms or rejects the flagged cells, highest score first. One confirmed parasite makes the slide
infected. A slide whose flagged cells are all answered and none is a parasite was screened down to a
*detection limit*: with review recall R (the share of parasitized cells the set holds, at its lower
bound, measured for the threshold alone: the ranked share only adds to it), a slide of N red cells at
parasitemia x shows at least one flagged parasite with probability 1 - (1 - x R)^N, so a slide at x = (1 - (1 - c)^(1/N)) / R or more would have shown one with probability c.
At R = 0.8 and c = 0.95 that is about 0.037% for 10,000 cells and 0.0037% for 100,000 (it scales as 1/N).
Cells the segmentation never found are not in N: the limit speaks of the cells screened. On a stain unlike
the out-of-fold cells' the recall may fall short of R, and the limit is then optimistic (benchmarks/README.md):
a lab's own labelled photos, as a source of their own, measure R there.

The threshold is chosen on out-of-fold (OOF) cells, pooled or per source as the cell threshold is: the
highest whose flagged share of the parasitized OOF cells reaches `patients.review_recall`; that recall's
lower bound is Korn-Graubard's over the OOF slides (their parasitized cells are clusters). Stored with the
slide rule, beside what the set costs on healthy slides: the share of an OOF slide's uninfected cells
flagged (median, 90th percentile, largest).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.evaluation.intervals import korn_graubard, wilson


@dataclass(frozen=True)
class ReviewSet:
    threshold: float  # a cell is flagged for review when its P(Parasitized) is at least this
    min_share: float  # ... or it is among this share of a photo's (or a slide of crops') cells, by score
    recall: float  # the share of the OOF parasitized cells flagged
    recall_lower: float  # its lower confidence bound, over the OOF slides
    healthy_median: float  # the share of an OOF slide's uninfected cells flagged: median
    healthy_p90: float  # ... 90th percentile
    healthy_max: float  # ... largest
    confidence: float

    def flagged(self, prob: np.ndarray) -> np.ndarray:
        """Whether each cell of one photo (or one slide of crops) is flagged."""
        prob = np.asarray(prob, float)
        out = prob >= self.threshold
        top = int(round(self.min_share * len(prob)))
        if top:
            out[np.argsort(-prob, kind="stable")[:top]] = True
        return out

    def order(self, prob: np.ndarray) -> np.ndarray:
        """The indices of the flagged cells, most likely parasite first (the order a person sees them)."""
        prob = np.asarray(prob, float)
        idx = np.flatnonzero(self.flagged(prob))
        return idx[np.argsort(-prob[idx], kind="stable")]

    def detection_limit(self, cells: int) -> float:
        """The least parasitemia at which a slide of `cells` red cells shows a parasite among its flagged cells
        with probability `confidence`, at the review recall's lower bound (nan for no cells or no recall)."""
        if cells <= 0 or self.recall_lower <= 0:
            return float("nan")
        return min(1.0, -math.expm1(math.log(1 - self.confidence) / cells) / self.recall_lower)

    def cells_to_rule_out(self, parasitemia: float) -> int | None:
        """How many red cells must be screened (their flagged cells reviewed, no parasite among them) for a
        detection limit at or below `parasitemia`; None when no number of cells reaches it."""
        hit = parasitemia * self.recall_lower
        if not 0 < hit < 1:
            return None
        return math.ceil(math.log(1 - self.confidence) / math.log1p(-hit))

    def describe(self) -> str:
        return (f"cells flagged for review from P(Parasitized) {self.threshold:.3f} and the top {self.min_share:.0%} "
                f"of each photo's: {self.recall:.1%} of the out-of-fold parasitized cells (lower bound "
                f"{self.recall_lower:.1%}), {self.healthy_median:.1%} of a healthy slide's cells at the median "
                f"({self.healthy_p90:.1%} at p90)")

    def as_dict(self) -> dict:
        return {k: round(v, 6) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, stored: dict) -> ReviewSet:
        return cls(**{k: float(stored[k]) for k in cls.__dataclass_fields__})


def choose(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, recall: float, confidence: float,
           min_share: float = 0.0) -> ReviewSet:
    """The review set chosen on these (OOF) cells: the highest threshold flagging at least `recall` of the
    parasitized cells, halfway to the next lower parasitized score (so it rests on no one cell's score), with
    `min_share` of each slide's cells by rank; its cost on healthy cells measured per slide, both counted."""
    positive, prob, slides = np.asarray(y) == POSITIVE, np.asarray(prob, float), np.asarray(slides)
    scores = np.sort(prob[positive])[::-1]
    if len(scores) == 0:
        threshold = 1.0
    else:
        k = min(len(scores), max(1, math.ceil(recall * len(scores) - 1e-9)))
        threshold = float((scores[k - 1] + scores[k]) / 2) if k < len(scores) else float(scores[-1])
    _, index = np.unique(slides, return_inverse=True)
    ranked = ReviewSet(threshold, min_share, 0, 0, 0, 0, 0, confidence)
    flagged = prob >= threshold
    for i in range(index.max() + 1 if len(index) else 0):
        mine = np.flatnonzero((index == i) & ~positive)  # a healthy slide made of this slide's uninfected cells
        flagged[mine] |= ranked.flagged(prob[mine])
    per_slide = [np.bincount(index, weights=m, minlength=index.max() + 1) for m in
                 (positive & flagged, positive, ~positive & flagged, ~positive)] if len(prob) else [np.zeros(0)] * 4
    hits, parasitized, false_flags, healthy = per_slide
    if parasitized.sum() == 0:
        found, lower = 0.0, 0.0
    else:
        found = float(hits.sum() / parasitized.sum())
        lower = korn_graubard(hits, parasitized, confidence)[0]
        if np.isnan(lower):  # one slide: its cells as independent
            lower = wilson(hits.sum(), parasitized.sum(), confidence)[0]
    shares = false_flags[healthy > 0] / healthy[healthy > 0]
    q = np.quantile(shares, [0.5, 0.9, 1.0]) if len(shares) else np.zeros(3)
    return ReviewSet(float(threshold), float(min_share), found, float(lower), *map(float, q), confidence)
