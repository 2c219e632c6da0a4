"""Predictions gathered by slide: cells, cells called parasitized, corrected parasitemia with its interval,
and the slide's answer (infected / not infected / refer) with its reason."""

from __future__ import annotations

import posixpath
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data import stain
from malaria_cnn.data.inputs import member
from malaria_cnn.data.slides import slide_of
from malaria_cnn.evaluation import patients

COLUMNS = ["slide", "cells", "called_parasitized", *patients.SLIDE_COLUMNS]


def path_beside(out: str | Path) -> Path:
    """predictions.csv -> predictions_slides.csv."""
    out = Path(out)
    return out.with_name(f"{out.stem}_slides.csv")


class Tally:
    """Each read file's slide (from its name, as ingest names it), probability and optical density: a few
    bytes per file."""

    def __init__(self, pattern: str):
        self.pattern, self.slides, self.probs, self.densities, self.unnamed = pattern, [], [], [], 0
        self.referred = 0

    def add(self, name: str, probability: float, density: np.ndarray | None = None) -> None:
        base = posixpath.basename(member(name).replace("\\", "/"))
        slide = slide_of(base, self.pattern)
        self.unnamed += slide is None
        self.slides.append(slide or base)  # a file whose name gives no slide is its own group
        self.probs.append(probability)
        self.densities.append(np.full(3, np.nan) if density is None else density)

    def write(self, dest: Path, threshold: float, rule: patients.SlideRule | None,
              stain_range: stain.StainRange | None = None) -> None:
        """One row per slide, answered by `rule`; a slide whose stain is outside `stain_range` is referred
        with that reason. Without a rule, only the share called."""
        slides, prob = np.array(self.slides, dtype=str), np.array(self.probs, dtype=float)
        names, cells, called = patients.counts(prob, slides, threshold)
        reasons = stain.referrals(stain_range, np.array(self.densities).reshape(-1, 3), slides, names)
        if rule is not None:
            extra = [a.row() for a in patients.with_referrals(rule.answers(prob, slides)[1], reasons)]
        else:
            extra = [(int(k), "" if why else round(k / n, 6), "", "", "", "", "", patients.REFER if why else "", why)
                     for k, n, why in zip(called, cells, reasons)]  # not corrected
        atomic.write_csv(dest, COLUMNS, [(name, int(n), int(k), *e) for name, n, k, e in zip(names, cells, called, extra)])
        self.dest, self.rule, self.referred = dest, rule, sum(map(bool, reasons))
        self.answers = [e[-2] for e in extra]

    def note(self, written: bool, out: str | Path) -> str:
        """What the summary line adds about the per-slide file."""
        if not written:
            return ""
        line = f" and {len(set(self.slides)):,} slides"
        if self.rule is not None:
            line += f" ({patients.tally(self.rule, self.answers)})"
        line += f" -> {self.dest}"
        if self.referred:
            line += (f"; {self.referred:,} slide{'s' if self.referred != 1 else ''} referred to a microscopist, not "
                     f"called (stain unlike the training data)")
        if self.rule is None:
            line += " (no slide_rule.json beside the model: slides not answered, parasitemia not corrected)"
        if self.unnamed:
            line += f"; {self.unnamed:,} file names name no slide, each its own slide (see --slide-pattern)"
        return line
