"""Predictions gathered by slide: cells, cells called parasitized, parasitemia with its interval, the slide call."""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data import stain
from malaria_cnn.data.slides import slide_of
from malaria_cnn.evaluation import patients

COLUMNS = ["slide", "cells", "called_parasitized", "parasitemia", "parasitemia_ci_lower", "parasitemia_ci_upper",
           "called_infected", "referred"]


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
        base = posixpath.basename(name.replace("\\", "/").rsplit(":", 1)[-1])
        slide = slide_of(base, self.pattern)
        self.unnamed += slide is None
        self.slides.append(slide or base)  # a file whose name gives no slide is its own group
        self.probs.append(probability)
        self.densities.append(np.full(3, np.nan) if density is None else density)

    def write(self, dest: Path, threshold: float, rule: patients.SlideRule | None, confidence: float,
              stain_range: stain.StainRange | None = None) -> None:
        """One row per slide; a slide whose stain is outside `stain_range` is referred: its counts stay,
        its parasitemia and call are left empty, and `referred` says why."""
        slides, prob = np.array(self.slides, dtype=str), np.array(self.probs, dtype=float)
        names, cells, called, _ = patients.counts(None, prob, slides, threshold)
        extra = patients.slide_rows(None, prob, slides, threshold, rule or patients.DEFAULT_RULE, confidence)
        reasons = stain.referrals(stain_range, np.array(self.densities).reshape(-1, 3), slides, names)
        atomic.write_csv(dest, COLUMNS, [(n, int(c), int(k), *(("",) * 4 if why else (*e[:3], e[4] if rule else "")),
                                          why) for n, c, k, e, why in zip(names, cells, called, extra, reasons)])
        self.dest, self.rule, self.referred = dest, rule, sum(map(bool, reasons))

    def note(self, written: bool, out: str | Path) -> str:
        """What the summary line adds about the per-slide file."""
        if not written:
            return ""
        line = f" and {len(set(self.slides)):,} slides -> {self.dest}"
        if self.referred:
            line += (f"; {self.referred:,} slide{'s' if self.referred != 1 else ''} referred to a microscopist, not "
                     f"called (stain unlike the training data)")
        if self.rule is None:
            line += " (no slide_rule.json beside the model: slides not called)"
        if self.unnamed:
            line += f"; {self.unnamed:,} file names name no slide, each its own slide (see --slide-pattern)"
        return line


@contextmanager
def interrupted_note(out: str | Path) -> Iterator[None]:
    """Say where the rows written before a Ctrl-C or a crash are, then let it go on."""
    try:
        yield
    except BaseException:
        print(f"stopped: the rows written so far are in {out}.partial", file=sys.stderr)
        raise
