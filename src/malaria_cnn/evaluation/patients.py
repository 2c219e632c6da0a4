"""Patient level: per slide, the cells called parasitized, the parasitemia they estimate, and a slide call.

A slide is *infected* (the truth) when at least one of its cells is labelled Parasitized. The slide
call is a rule on the cells the model calls parasitized at the cell threshold: `cells` (at least
`value` of them) or `parasitemia` (their share at least `value`). The rule is chosen where the cell
threshold is (the out-of-fold predictions; with one fold, the validation split), maximising
slide-level balanced accuracy, ties to the more sensitive rule, and is stored in models/slide_rule.json
with the sha256 of its model. Parasitemia here is the share of the given crops called parasitized
(with Wilson's interval over the slide's cells), not corrected for the cell classifier's errors, and
only as good an estimate of a patient's parasitemia as the crops are a fair sample of the slide's
red cells.
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
from malaria_cnn.evaluation.intervals import wilson

SLIDE_COLUMNS = ["parasitemia", "parasitemia_ci_lower", "parasitemia_ci_upper", "infected", "called_infected"]


@dataclass(frozen=True)
class SlideRule:
    kind: str  # "cells" or "parasitemia"
    value: float

    def calls(self, called: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Which slides are called infected, from their cells called parasitized and their cells."""
        measure = called if self.kind == "cells" else np.asarray(called) / np.maximum(cells, 1)
        return np.asarray(measure) >= self.value

    def describe(self) -> str:
        if self.kind == "cells":
            return f"at least {self.value:g} cell{'s' if self.value != 1 else ''} called parasitized"
        return f"parasitemia >= {self.value:.4g}"


DEFAULT_RULE = SlideRule("cells", 1)  # any parasite seen: what a microscopist reports


def counts(y: np.ndarray | None, prob: np.ndarray, slides: np.ndarray, threshold: float):
    """(slide names, cells, cells called parasitized, labelled parasitized or None), one entry per slide."""
    names, index = np.unique(np.asarray(slides), return_inverse=True)
    cells = np.bincount(index, minlength=len(names))
    called = np.bincount(index, weights=np.asarray(prob) >= threshold, minlength=len(names)).astype(int)
    truth = None if y is None else np.bincount(index, weights=np.asarray(y) == POSITIVE, minlength=len(names))
    return names, cells, called, None if truth is None else truth.astype(int)


def _scores(infected: np.ndarray, called: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy, sensitivity) of slide calls."""
    sens = float(np.mean(called[infected])) if infected.any() else float("nan")
    spec = float(np.mean(~called[~infected])) if (~infected).any() else float("nan")
    return (sens + spec) / 2, sens


def choose_rule(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> tuple[SlideRule, str]:
    """The rule with the best slide-level balanced accuracy on these (validation) slides, ties to the
    more sensitive one, then to `cells` and the lower value; and how it was chosen."""
    _, cells, called, positives = counts(y, prob, slides, threshold)
    infected = positives > 0
    if infected.all() or not infected.any():
        return DEFAULT_RULE, f"default: the slides it was chosen on have no {'un' if infected.all() else ''}infected slide"
    candidates = [SlideRule("cells", float(k)) for k in sorted(set(called.tolist()) | {1}) if k >= 1]
    shares = np.unique(called / cells)
    below = np.r_[0.0, shares[:-1]]
    candidates += [SlideRule("parasitemia", round(float((s + b) / 2), 6)) for s, b in zip(shares, below) if s > 0]
    ranked = [(*_scores(infected, r.calls(called, cells)), r.kind == "cells", -r.value, i)
              for i, r in enumerate(candidates)]
    best = max(ranked)
    return candidates[best[-1]], f"balanced accuracy {best[0]:.3f} over {len(cells)} slides"


def slide_rows(y: np.ndarray | None, prob: np.ndarray, slides: np.ndarray, threshold: float, rule: SlideRule,
               confidence: float) -> list[tuple]:
    """Per slide: SLIDE_COLUMNS (infected is empty without labels), in slide name order."""
    _, cells, called, positives = counts(y, prob, slides, threshold)
    call = rule.calls(called, cells)
    rows = []
    for i in range(len(cells)):
        low, high = wilson(called[i], cells[i], confidence)
        infected = "" if positives is None else int(positives[i] > 0)
        rows.append((round(called[i] / cells[i], 6), round(low, 6), round(high, 6), infected, int(call[i])))
    return rows


def slide_metrics(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float, rule: SlideRule,
                  confidence: float) -> dict:
    """Slide-level sensitivity and specificity with Wilson intervals (slides are independent patients)."""
    _, cells, called, positives = counts(y, prob, slides, threshold)
    infected, call = positives > 0, rule.calls(called, cells)
    out: dict = {"slides_infected": int(infected.sum()), "slides_uninfected": int((~infected).sum())}
    for name, group, hit in (("sensitivity", infected, call), ("specificity", ~infected, ~call)):
        k, n = int(np.sum(hit[group])), int(group.sum())
        low, high = wilson(k, n, confidence)
        out[f"slide_{name}"] = round(k / n, 6) if n else None
        out[f"slide_{name}_ci_lower"] = None if np.isnan(low) else round(low, 6)
        out[f"slide_{name}_ci_upper"] = None if np.isnan(high) else round(high, 6)
    out["slide_rule"] = rule.describe()
    return out


def save(path: str | Path, rule: SlideRule, how: str, model_path: str | Path) -> None:
    atomic.write_json(path, {"kind": rule.kind, "value": rule.value, "rule": rule.describe(), "chosen": how,
                             "model_sha256": file_sha256(model_path)})


def load(path: str | Path, model_path: str | Path) -> SlideRule:
    """The stored slide rule, checked against its model; one clear error otherwise."""
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
        rule, sha = SlideRule(str(stored["kind"]), float(stored["value"])), stored["model_sha256"]
    except FileNotFoundError:
        raise UserError(f"{path} not found: run `dvc repro` to choose the model's slide rule") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a slide rule file written by this project") from None
    if rule.kind not in ("cells", "parasitemia"):
        raise UserError(f"{path}: unknown slide rule kind {rule.kind!r}")
    if sha != file_sha256(model_path):
        raise UserError(f"{path} was chosen for another model than {model_path}: run `dvc repro`")
    return rule
