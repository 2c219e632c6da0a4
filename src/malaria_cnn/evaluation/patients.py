"""Patient level: one answer per slide, infected / not infected / refer to a microscopist, with its reason.

A slide is *infected* (the truth) when at least one of its cells is labelled Parasitized. The answer
rests on proportions, never on raw counts, so it holds at 30 cells and at 5,000:

1. **refer** when the slide is unlike the out-of-fold (OOF) slides: a larger share of its cells scores in
   the *uncertain band* (above nine in ten OOF uninfected cells, below nine in ten OOF parasitized cells)
   than any OOF slide had, beyond the doubt of its own cell count (the share's Wilson interval lies above
   the OOF maximum); the commands also refer a slide or photo whose stain the model never saw (stain.py);
2. **infected** when its corrected parasitemia's interval (parasitemia.py) lies above 0: more cells
   called than the false calls of the OOF slides explain;
3. **not infected** when the interval's upper end is below the rule's `boundary`: any parasitemia the
   slide may have is below it;
4. **refer** otherwise: the interval straddles [0, boundary], too few cells or too many false calls to tell.

The boundary is chosen on the OOF slides: the largest with slide sensitivity among the slides called at
least `patients.min_sensitivity` (a miss costs a patient; a referral costs a microscopist's look); or it is
`patients.rule_out`, the parasitemia a lab needs ruled out. "Not infected" says no more than that: any
parasitemia is below the boundary. A parasitemia below the model's detection limit (its false calls'
spread between slides over its sensitivity) cannot be told from none, however many cells are counted. The
rule, with the OOF slides' error rates the interval draws on and what it gave there, is stored in
models/slide_rule.json with the sha256 of its model.
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

INFECTED, NOT_INFECTED, REFER = "infected", "not infected", "refer"
ANSWERS = (INFECTED, NOT_INFECTED, REFER)
# the per-slide table's columns, wherever slides are answered (screen, predict --by-slide, evaluate)
# counted: cells at or above the rule's counting threshold; counted_share: their share, which parasitemia corrects
SLIDE_COLUMNS = ["counted", "counted_share", "parasitemia", "parasitemia_ci_lower", "parasitemia_ci_upper", "answer",
                 "reason"]
BAND_QUANTILE = 0.9  # the uncertain band: above this share of OOF uninfected cells, below it of parasitized ones


@dataclass(frozen=True)
class Answer:
    answer: str  # one of ANSWERS
    reason: str
    estimate: Estimate
    counted: int  # cells at or above the counting threshold

    def row(self) -> tuple:
        """SLIDE_COLUMNS' values."""
        e = self.estimate
        return (self.counted, *(("" if np.isnan(v) else round(v, 6)) for v in (e.called, e.corrected, e.lower, e.upper)),
                self.answer, self.reason)


@dataclass(frozen=True)
class SlideRule:
    boundary: float  # "not infected" needs the corrected parasitemia's upper end below this
    count_threshold: float  # the cells counted for the corrected parasitemia: P(Parasitized) at least this
    band: tuple[float, float]  # the uncertain band of P(Parasitized), [low, high); empty when low >= high
    band_limit: float  # the largest share of an OOF slide's cells in the band
    rates: ErrorRates  # the OOF slides' error rates at the counting threshold
    confidence: float  # of the interval

    def answer(self, counted: int, cells: int, uncertain: int, effective: float | None = None) -> Answer:
        """The answer for a slide of `cells` cells, `counted` of them at or above the counting threshold and
        `uncertain` in the band; `effective`: their effective count when they come in photos
        (intervals.effective_size)."""
        e = parasitemia.estimate(counted, cells, self.rates, self.confidence, effective)
        answer = self._answer(e, cells, uncertain, effective)
        return Answer(answer[0], answer[1], e, int(counted))

    def _answer(self, e: Estimate, cells: int, uncertain: int, effective: float | None) -> tuple[str, str]:
        if cells == 0:
            return REFER, "no cells"
        if not self.rates.usable:
            return REFER, "the model's slide rule has no out-of-fold error rates to correct with"
        low, _ = wilson(uncertain, cells if effective is None else min(effective, cells), self.confidence)
        if self.band[0] < self.band[1] and uncertain / cells > self.band_limit and low > self.band_limit:
            return REFER, (f"{uncertain / cells:.0%} of cells scored where the model is unsure "
                           f"({self.band[0]:.2f}-{self.band[1]:.2f}); out-of-fold slides had at most {self.band_limit:.0%}")
        span = f"corrected parasitemia {e.corrected:.2%} ({e.lower:.2%}-{e.upper:.2%})"
        if e.lower > 0:
            return INFECTED, f"{span}: more cells called than false calls explain"
        if e.upper < self.boundary:
            return NOT_INFECTED, f"{span}: no more cells called than false calls explain; any parasitemia below " \
                                 f"{self.boundary:.2%}"
        return REFER, f"{span}: could be 0, could be {self.boundary:.2%} or more"

    def answers(self, prob: np.ndarray, slides: np.ndarray) -> tuple[np.ndarray, list[Answer]]:
        """(slide names in np.unique order, their answers) from the cells' P(Parasitized)."""
        names, cells, called, uncertain = counts(prob, slides, self.count_threshold, self.band)
        return names, [self.answer(int(k), int(n), int(u)) for k, n, u in zip(called, cells, uncertain)]

    @property
    def detection_limit(self) -> float:
        """The least parasitemia the rule tells from none (parasitemia.detection_limit)."""
        return parasitemia.detection_limit(self.rates, self.confidence) if self.rates.usable else float("nan")

    def describe(self) -> str:
        return (f"infected when the corrected parasitemia's {self.confidence:.0%} interval lies above 0, "
                f"not infected when it lies below {self.boundary:.2%}, refer otherwise (detection limit about "
                f"{self.detection_limit:.1%})")

    def as_dict(self) -> dict:
        return {"boundary": self.boundary, "detection_limit": round(self.detection_limit, 6),
                "count_threshold": self.count_threshold, "band": list(self.band), "band_limit": self.band_limit,
                "confidence": self.confidence, "rates": self.rates.as_dict()}


def tally(rule: SlideRule, answers: list[str]) -> str:
    """How many slides got each answer, saying what "not infected" rules out."""
    n = {a: answers.count(a) for a in ANSWERS}
    return (f"{n[INFECTED]:,} infected, {n[NOT_INFECTED]:,} not infected (parasitemia below {rule.boundary:.2%}), "
            f"{n[REFER]:,} refer")


def with_referrals(answers: list[Answer], reasons: list[str]) -> list[Answer]:
    """The answers, with those of slides referred for another reason (a stain unlike the training data's)
    turned to refer: their count stays, no share or parasitemia (a number the model cannot vouch for)."""
    blank = Estimate(*(float("nan"),) * 4)
    return [Answer(REFER, why, blank, a.counted) if why else a for a, why in zip(answers, reasons)]


def counts(prob: np.ndarray, slides: np.ndarray, threshold: float,
           band: tuple[float, float] = (1.0, 0.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(slide names, cells, cells called parasitized, cells in the uncertain band), one entry per slide."""
    names, index = np.unique(np.asarray(slides), return_inverse=True)
    prob = np.asarray(prob, float)

    def per_slide(mask):
        return np.bincount(index, weights=mask, minlength=len(names)).astype(int)

    return (names, per_slide(np.ones(len(prob))), per_slide(prob >= threshold),
            per_slide((prob >= band[0]) & (prob < band[1])))


def infected_slides(y: np.ndarray, slides: np.ndarray) -> np.ndarray:
    """Per slide in np.unique order: whether any of its cells is labelled Parasitized."""
    _, index = np.unique(np.asarray(slides), return_inverse=True)
    return np.bincount(index, weights=np.asarray(y) == POSITIVE) > 0


def slide_metrics(infected: np.ndarray, answers: list[str], confidence: float) -> dict:
    """Sensitivity and specificity among the slides called (infected or not), and the share referred, each
    with Wilson's interval (slides are independent patients)."""
    infected, answers = np.asarray(infected, bool), np.asarray(answers)
    called = answers != REFER
    out: dict = {"slides_infected": int(infected.sum()), "slides_uninfected": int((~infected).sum())}
    for name, k, n in (("sensitivity", np.sum(infected & (answers == INFECTED)), np.sum(infected & called)),
                       ("specificity", np.sum(~infected & (answers == NOT_INFECTED)), np.sum(~infected & called)),
                       ("refer_rate", np.sum(~called), len(answers))):
        low, high = wilson(int(k), int(n), confidence)
        out[f"slide_{name}"] = round(int(k) / int(n), 6) if n else None
        out[f"slide_{name}_ci_lower"] = None if np.isnan(low) else round(low, 6)
        out[f"slide_{name}_ci_upper"] = None if np.isnan(high) else round(high, 6)
    out["slides_referred"] = int(np.sum(~called))
    return out


def describe(m: dict) -> str:
    """slide_metrics in a few words."""
    def part(name, label):
        v, lo, hi = (m.get(f"slide_{name}{s}") for s in ("", "_ci_lower", "_ci_upper"))
        return f"{label} n/a" if v is None else f"{label} {v:.3f} ({lo:.3f}-{hi:.3f})"

    total = m["slides_infected"] + m["slides_uninfected"]
    return (f"{part('sensitivity', 'sensitivity')} and {part('specificity', 'specificity')} among the slides called, "
            f"{m['slides_referred']} of {total} referred ({part('refer_rate', 'rate')})")


def count_threshold(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, confidence: float) -> float:
    """The P(Parasitized) at or above `threshold` whose count of cells best tells parasites from false calls:
    the lowest parasitemia.separation, the false-call rate of an error-prone new slide over the sensitivity
    of a weak one. Above the cell threshold the false calls of hard slides fall faster than the parasites
    found (benchmarks/README.md)."""
    positive, prob = np.asarray(y) == POSITIVE, np.asarray(prob, float)
    above = np.unique(np.quantile(prob[positive & (prob >= threshold)], np.linspace(0, 0.5, 26))) \
        if np.any(positive & (prob >= threshold)) else []
    best, limit = threshold, np.inf
    for t in [threshold, *(float(v) for v in above if v > threshold)]:
        rates = ErrorRates.measure(y, prob, slides, t)
        if not rates.usable or rates.sensitivity <= 0:
            continue
        here = parasitemia.separation(rates, confidence)
        if here < limit - 1e-9:
            best, limit = t, here
    return float(best)


def choose_rule(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, confidence: float,
                min_sensitivity: float, rule_out: float | str = "auto") -> tuple[SlideRule, dict]:
    """The slide rule chosen on these (OOF) cells, and what it gives on their slides (slide_metrics); its
    boundary is `rule_out`, or with "auto" the largest that keeps `min_sensitivity` there."""
    positive, prob = np.asarray(y) == POSITIVE, np.asarray(prob, float)
    threshold = count_threshold(y, prob, slides, threshold, confidence)
    band = (float(np.quantile(prob[~positive], BAND_QUANTILE)) if (~positive).any() else 1.0,
            float(np.quantile(prob[positive], 1 - BAND_QUANTILE)) if positive.any() else 0.0)
    _, cells, called, uncertain = counts(prob, slides, threshold, band)
    limit = float(np.max(uncertain / cells)) if band[0] < band[1] else 0.0
    rates = ErrorRates.measure(y, prob, slides, threshold)
    infected = infected_slides(y, slides)
    rule = SlideRule(1.0, threshold, band, limit, rates, confidence)
    # every slide's interval once; the boundary only decides between "not infected" and "refer"
    first = [rule.answer(int(k), int(n), int(u)) for k, n, u in zip(called, cells, uncertain)]
    # candidates: halfway between the upper ends of the slides not called infected, from just above the
    # highest healthy slide's (a boundary above every healthy slide would only add misses) down to 0
    uppers = sorted({a.estimate.upper for a in first if a.answer == NOT_INFECTED} | {0.0})
    healthy = max((a.estimate.upper for a, sick in zip(first, infected) if a.answer == NOT_INFECTED and not sick),
                  default=uppers[-1])
    above = [u for u in uppers if u > healthy]
    top = (healthy + above[0]) / 2 if above else min(1.0, healthy + 0.01)
    candidates = [top] + [(a + b) / 2 for a, b in zip(uppers[:-1], uppers[1:]) if b <= healthy][::-1] + [0.0]
    if rule_out != "auto":
        candidates = [float(rule_out)]
    for boundary in candidates:  # largest first: the fewest referrals whose sensitivity holds
        answers = [NOT_INFECTED if a.answer == NOT_INFECTED and a.estimate.upper < boundary else
                   REFER if a.answer == NOT_INFECTED else a.answer for a in first]
        m = slide_metrics(infected, answers, confidence)
        if m["slide_sensitivity"] is None or m["slide_sensitivity"] >= min_sensitivity:
            break
    return SlideRule(round(float(boundary), 6), round(threshold, 6), band, limit, rates, confidence), m


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
                     float(stored["band_limit"]),
                     ErrorRates(*(tuple(int(v) for v in r[k]) for k in
                                  ("uninfected", "false_calls", "parasitized", "detected"))),
                     float(stored["confidence"]))


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
