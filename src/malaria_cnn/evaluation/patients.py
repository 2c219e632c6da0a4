"""Patient level: one answer per slide, infected / not infected / refer to a microscopist, with its reason,
from the model's scores alone or after a person's review of the cells it flags. Every command (screen,
predict --by-slide, evaluate, serve) answers through `SlideRule.answer`.

A slide is *infected* (the truth) when at least one of its cells is labelled Parasitized. The answer:

1. **infected** when a person confirmed a parasite; without one, when the corrected parasitemia's interval
   (parasitemia.py) lies above 0: more cells called than the false calls of out-of-fold (OOF) slides explain;
2. **refer** when the slide is unlike the smear-like OOF slides the rule was fitted on (smear_like.py): its
   stain was never seen (stain.py), or a larger share of its cells is flagged for review, or scores in the
   *uncertain band*, than any OOF slide at 0-2% parasitemia had, beyond the doubt of its own cell count. A
   review of such a slide can confirm a parasite; finding none, it still refers (the review set's recall
   is not known on such a slide);
3. **not infected** when every flagged cell was reviewed, none parasitized, and the review's detection limit
   (review.py) is at most the rule's `boundary`: "no parasite among N cells; a slide at X% or more would
   have shown one"; without a review, only when the corrected parasitemia's interval lies below `boundary`;
4. **refer** otherwise, saying what would settle it: the cells left to review, or how many more cells
   to screen to rule out `boundary`.

`boundary` is `patients.rule_out`, the parasitemia a lab must rule out (0.1% by default: counts alone never
reach it, so the model alone answers infected or refer), or fitted on the OOF slides (fit_rule.py). The
rule, with the error rates the interval draws on and its review set, is stored in models/slide_rule.json
with the sha256 of its model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.atomic import file_sha256
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import POSITIVE
from malaria_cnn.evaluation import parasitemia
from malaria_cnn.evaluation.intervals import wilson
from malaria_cnn.evaluation.parasitemia import ErrorRates, Estimate
from malaria_cnn.evaluation.review import ReviewSet

INFECTED, NOT_INFECTED, REFER = "infected", "not infected", "refer"
ANSWERS = (INFECTED, NOT_INFECTED, REFER)
# the per-slide table's columns, wherever slides are answered (screen, predict --by-slide, evaluate)
# counted: cells at or above the rule's counting threshold; counted_share: their share, which parasitemia corrects;
# flagged: cells in the review set; review_limit: the detection limit once they are reviewed and none is a parasite
SLIDE_COLUMNS = ["counted", "counted_share", "parasitemia", "parasitemia_ci_lower", "parasitemia_ci_upper", "flagged",
                 "review_limit", "answer", "reason"]


@dataclass(frozen=True)
class Slide:
    """What screening gave for one slide."""

    cells: int
    counted: int  # at or above the counting threshold
    uncertain: int  # in the uncertain band
    flagged: int  # in the review set
    effective: float | None = None  # the cells' effective count when they come in photos (intervals.effective_size)
    photos: int = 0  # how many photos they come in (0: crops)
    unlike: str = ""  # why its stain is unlike the training data's ("" when it is not)


@dataclass(frozen=True)
class Review:
    """A person's answers for one slide's cells."""

    parasitized: int  # cells confirmed parasitized
    answered: int  # flagged cells answered (parasitized, uninfected or not a red cell)
    not_cells: int = 0  # cells answered "not a red cell"


@dataclass(frozen=True)
class Answer:
    answer: str  # one of ANSWERS
    reason: str
    estimate: Estimate  # the model's corrected parasitemia
    counted: int
    flagged: int
    review_limit: float  # the detection limit of a clean review of the flagged cells

    def row(self) -> tuple:
        """SLIDE_COLUMNS' values."""
        e = self.estimate
        return (self.counted, *(_num(v) for v in (e.called, e.corrected, e.lower, e.upper)), self.flagged,
                _num(self.review_limit), self.answer, self.reason)


def _num(v: float):
    return "" if v is None or np.isnan(v) else round(float(v), 6)


@dataclass(frozen=True)
class SlideRule:
    boundary: float  # "not infected" rules out this parasitemia or more
    count_threshold: float  # the cells counted for the corrected parasitemia: P(Parasitized) at least this
    band: tuple[float, float]  # the uncertain band of P(Parasitized), [low, high); empty when low >= high
    band_limit: float  # the largest share of a smear-like OOF slide's cells in the band
    flag_limit: float  # the largest share of a smear-like OOF slide's cells flagged for review
    rates: ErrorRates  # the OOF slides' error rates at the counting threshold
    review: ReviewSet
    confidence: float  # of the intervals

    def slide(self, prob: np.ndarray, effective: float | None = None, photos: int = 0, unlike: str = "") -> Slide:
        """A slide of cells scored `prob`."""
        prob = np.asarray(prob, float)
        return Slide(len(prob), int(np.sum(prob >= self.count_threshold)),
                     int(np.sum((prob >= self.band[0]) & (prob < self.band[1]))), int(np.sum(self.review.flagged(prob))),
                     effective, photos, unlike)

    def answer(self, s: Slide, review: Review | None = None) -> Answer:
        """The slide's answer, from the model alone or after `review`."""
        e = parasitemia.estimate(s.counted, s.cells, self.rates, self.confidence, s.effective)
        red = s.cells - (review.not_cells if review else 0)
        limit = self.review.detection_limit(red)
        answer, reason = self._answer(s, review, e, red, limit)
        return Answer(answer, reason, e, s.counted, s.flagged, limit)

    def _answer(self, s: Slide, review: Review | None, e: Estimate, red: int, limit: float) -> tuple[str, str]:
        if review is not None and review.parasitized:
            return INFECTED, f"{review.parasitized:,} parasitized cell{'s' * (review.parasitized > 1)} confirmed"
        if s.cells == 0 or red <= 0:
            return REFER, "no cells"
        unlike = s.unlike or self.unlike(s)
        done = review is not None and review.answered >= s.flagged
        if unlike:
            return REFER, unlike + ("; no parasite among the flagged cells, but how many a review finds is not known "
                                    "on such a slide" if done else f"; review the {s.flagged:,} cells flagged")
        if done:
            return self._after_review(s, red, limit)
        if not self.rates.usable:
            return REFER, "the model's slide rule has no out-of-fold error rates to correct with"
        span = f"corrected parasitemia {e.corrected:.2%} ({e.lower:.2%}-{e.upper:.2%})"
        if e.lower > 0:
            return INFECTED, f"{span}: more cells called than false calls explain"
        if e.upper < self.boundary:
            return NOT_INFECTED, f"{span}: any parasitemia below {self.boundary:.2%}"
        left = s.flagged - (review.answered if review else 0)
        return REFER, f"{span}: could be 0; review the {left:,} cell{'s' * (left != 1)} flagged" + \
            (f" of {s.flagged:,}" if review and review.answered else "")

    def _after_review(self, s: Slide, red: int, limit: float) -> tuple[str, str]:
        seen = f"no parasite among {red:,} cells screened ({s.flagged:,} flagged and reviewed)"
        if limit <= self.boundary:
            return NOT_INFECTED, (f"{seen}; a slide at {limit:.3%} or more would have shown one with "
                                  f"{self.confidence:.0%} probability")
        need = self.review.cells_to_rule_out(self.boundary)
        if need is None:
            return REFER, f"{seen}; no review can rule out {self.boundary:.2%} with this review set"
        more = need - red
        photos = f" (about {-(-more * s.photos // red):,} more photos)" if s.photos else ""
        return REFER, f"{seen}, down to {limit:.2%}; screen about {more:,} more cells{photos} to rule out " \
                      f"{self.boundary:.2%}"

    def unlike(self, s: Slide) -> str:
        """Why a slide is unlike every smear-like OOF slide ("" when it is not): its flagged or uncertain share
        beyond the largest there, beyond the doubt of its own cells (Wilson's interval at their effective size)."""
        n = s.cells if s.effective is None else min(s.effective, s.cells)
        for k, limit, what in ((s.uncertain, self.band_limit, f"scored where the model is unsure "
                                                                f"({self.band[0]:.2f}-{self.band[1]:.2f})"),
                               (s.flagged, self.flag_limit, "flagged for review")):
            if what.startswith("scored") and self.band[0] >= self.band[1]:
                continue
            if k / s.cells > limit and wilson(k * n / s.cells, n, self.confidence)[0] > limit:
                return (f"{k / s.cells:.0%} of cells {what}, more than any out-of-fold slide at 0-2% parasitemia "
                        f"({limit:.0%}): a stain unlike training's, or a parasitemia above 2%")
        return ""

    def answers(self, prob: np.ndarray, slides: np.ndarray) -> tuple[np.ndarray, list[Answer]]:
        """(slide names in np.unique order, the model's answers) from the cells' P(Parasitized)."""
        names, index = np.unique(np.asarray(slides), return_inverse=True)
        prob = np.asarray(prob, float)
        return names, [self.answer(self.slide(prob[index == i])) for i in range(len(names))]

    @property
    def detection_limit(self) -> float:
        """The least parasitemia counting alone tells from none (parasitemia.detection_limit)."""
        return parasitemia.detection_limit(self.rates, self.confidence) if self.rates.usable else float("nan")

    def describe(self) -> str:
        return (f"infected when a parasite is confirmed, or the corrected parasitemia's {self.confidence:.0%} "
                f"interval lies above 0; not infected when a review of the flagged cells rules out {self.boundary:.2%} "
                f"(counting alone rules out about {self.detection_limit:.1%}); refer otherwise; "
                f"{self.review.describe()}")

    def as_dict(self) -> dict:
        return {"boundary": self.boundary, "detection_limit": _num(self.detection_limit),
                "count_threshold": self.count_threshold, "band": list(self.band), "band_limit": self.band_limit,
                "flag_limit": self.flag_limit, "confidence": self.confidence, "rates": self.rates.as_dict(),
                "review": self.review.as_dict()}


def tally(rule: SlideRule, answers: list[str]) -> str:
    """How many slides got each answer."""
    n = {a: answers.count(a) for a in ANSWERS}
    return f"{n[INFECTED]:,} infected, {n[NOT_INFECTED]:,} not infected, {n[REFER]:,} refer"


def with_referrals(answers: list[Answer], reasons: list[str]) -> list[Answer]:
    """The answers, with those of slides referred for another reason (a stain unlike the training data's)
    turned to refer: their count stays, no share or parasitemia (a number the model cannot vouch for)."""
    blank = Estimate(*(float("nan"),) * 4)
    return [Answer(REFER, why, blank, a.counted, a.flagged, a.review_limit) if why else a
            for a, why in zip(answers, reasons)]


def counts(prob: np.ndarray, slides: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slide names, cells, cells at or above `threshold`), one entry per slide."""
    names, index = np.unique(np.asarray(slides), return_inverse=True)
    prob = np.asarray(prob, float)
    cells = np.bincount(index, minlength=len(names)).astype(int)
    return names, cells, np.bincount(index, weights=prob >= threshold, minlength=len(names)).astype(int)


def infected_slides(y: np.ndarray, slides: np.ndarray) -> np.ndarray:
    """Per slide in np.unique order: whether any of its cells is labelled Parasitized."""
    _, index = np.unique(np.asarray(slides), return_inverse=True)
    return np.bincount(index, weights=np.asarray(y) == POSITIVE) > 0


def slide_metrics(infected: np.ndarray, answers: list[str], confidence: float, prefix: str = "") -> dict:
    """Sensitivity and specificity among the slides called (infected or not), and the share referred, each
    with Wilson's interval (slides are independent patients); `prefix` before each key but the slide counts."""
    infected, answers = np.asarray(infected, bool), np.asarray(answers)
    called = answers != REFER
    out: dict = {"slides_infected": int(infected.sum()), "slides_uninfected": int((~infected).sum())}
    for name, k, n in (("sensitivity", np.sum(infected & (answers == INFECTED)), np.sum(infected & called)),
                       ("specificity", np.sum(~infected & (answers == NOT_INFECTED)), np.sum(~infected & called)),
                       ("refer_rate", np.sum(~called), len(answers))):
        low, high = wilson(int(k), int(n), confidence)
        out[f"{prefix}slide_{name}"] = round(int(k) / int(n), 6) if n else None
        out[f"{prefix}slide_{name}_ci_lower"] = None if np.isnan(low) else round(low, 6)
        out[f"{prefix}slide_{name}_ci_upper"] = None if np.isnan(high) else round(high, 6)
    out[f"{prefix}slides_referred"] = int(np.sum(~called))
    return out


def describe(m: dict, prefix: str = "") -> str:
    """slide_metrics in a few words."""
    def part(name, label):
        v, lo, hi = (m.get(f"{prefix}slide_{name}{s}") for s in ("", "_ci_lower", "_ci_upper"))
        return f"{label} n/a" if v is None else f"{label} {v:.3f} ({lo:.3f}-{hi:.3f})"

    total = m["slides_infected"] + m["slides_uninfected"]
    referred = m[f"{prefix}slides_referred"]
    return (f"{part('sensitivity', 'sensitivity')} and {part('specificity', 'specificity')} among the slides called, "
            f"{referred} of {total} referred ({part('refer_rate', 'rate')})")


def save(path: str | Path, rule: SlideRule, chosen_on: dict, model_path: str | Path,
         sources: dict[str, tuple[SlideRule, dict]] | None = None) -> None:
    """Write the rule with what it gave where it was chosen and its model's sha256; with `sources`, each
    training source's own rule (chosen on its cells alone at its own threshold) under `by_source`."""
    mine = {name: {**r.as_dict(), "rule": r.describe(), "chosen_on": on} for name, (r, on) in (sources or {}).items()}
    atomic.write_json(path, {**rule.as_dict(), "rule": rule.describe(), "chosen_on": chosen_on,
                             **({"by_source": mine} if mine else {}), "model_sha256": file_sha256(model_path)})


def _from_dict(stored: dict) -> SlideRule:
    r = stored["rates"]
    return SlideRule(float(stored["boundary"]), float(stored["count_threshold"]), tuple(map(float, stored["band"])),
                     float(stored["band_limit"]), float(stored["flag_limit"]),
                     ErrorRates(*(tuple(int(v) for v in r[k]) for k in
                                  ("uninfected", "false_calls", "parasitized", "detected"))),
                     ReviewSet.from_dict(stored["review"]), float(stored["confidence"]))


def load_all(path: str | Path, model_path: str | Path) -> tuple[SlideRule, dict[str, SlideRule]]:
    """The stored slide rule and each training source's own (by_source), checked against their model; one
    clear error otherwise."""
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        rule = _from_dict(stored)
        mine = {name: _from_dict(d) for name, d in stored.get("by_source", {}).items()}
        sha = stored["model_sha256"]
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `dvc repro` to choose the model's slide rule") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is not a slide rule file written by this version of the project: "
                        "run `dvc repro`") from None
    if sha != file_sha256(model_path):
        raise UserError(f"{path} was chosen for another model than {model_path}: run `dvc repro`")
    return rule, mine


def load(path: str | Path, model_path: str | Path, source: str | None = None) -> SlideRule:
    """The stored slide rule, checked against its model (with `source`, that training source's own); one
    clear error otherwise."""
    rule, mine = load_all(path, model_path)
    if source is None:
        return rule
    if source not in mine:
        raise UserError(f"--source {source}: {path} has no slide rule of that source (its sources: "
                        f"{', '.join(mine) or 'none'})")
    return mine[source]
