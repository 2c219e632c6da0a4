"""Stain standardisation of a cell, and the check that a photo's or a slide's stain is one training saw.

By Beer and Lambert, a stained cell's optical density (OD = -ln(I / 255), per RGB channel) is
proportional to the stain it holds: a darker batch multiplies every pixel's OD, a paler one divides
it. `standardised` (mode `od`) scales each channel's OD so that the cell's median pixel lands on
REFERENCE_RGB, a typical NIH cell: every cell, whatever its stain, reaches the model as a pink cell,
and a parasite is what is darker than *its own* cell. The background and the cell's outermost pixel
(blended with the background by resizing) take the reference colour too, so the model reads what
is inside a cell, not the outline a segmentation cut (a jagged cut from a crowded photo looked like
a parasite to a model that saw NIH's smooth outlines on black). It works on the model-sized crop,
and `images.py` calls it on every crop and cell that reaches a model: training, predict, evaluate
and screen cannot drift apart.

What standardisation cannot undo is a stain far outside what training saw (a near-white or a
near-black cell keeps few grey levels to scale). `StainRange` is the span of the training slides'
stain, each slide summarised by its cells' median OD per channel; a photo or slide outside it by
more than the mode's margin (MARGINS) is referred to a microscopist rather than counted.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.atomic import file_sha256
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import STAIN_MODES as MODES  # od: per-cell optical-density standardisation | none

DEFAULT_MODE = "od"
REFERENCE_RGB = np.array([189.0, 155.0, 159.0])  # the median pixel of a typical uninfected NIH cell
BLACK = 10  # pixels darker than this in every channel are background
MAX_SCALE = 8.0  # a cell's OD is scaled by at most this factor either way
CHANNELS = ("red", "green", "blue")
_REFERENCE_OD = -np.log(REFERENCE_RGB / 255)
_REFERENCE_PIXEL = REFERENCE_RGB.astype(np.uint8)
_LEVELS = np.arange(256, dtype=np.float64) / 255
_KERNEL = np.ones((3, 3), np.uint8)
_CHANNELS = np.arange(3)


def cell_pixels(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside, core) masks of a crop (h, w, 3): its non-black pixels, and those a pixel clear of black
    (the rim, blended with the background by resizing, is left out of the statistics)."""
    inside, core = _masks(rgb)
    return inside > 0, core > 0


def _masks(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cell_pixels as OpenCV masks (uint8, 255 on)."""
    inside = cv2.bitwise_not(cv2.inRange(rgb, (0, 0, 0), (BLACK - 1,) * 3))
    return inside, cv2.erode(inside, _KERNEL)


def _cell_mask(rgb: np.ndarray) -> np.ndarray:
    """The pixels the cell's statistics come from (uint8 mask): its core, or all of it when no pixel is clear
    of black."""
    inside, core = _masks(rgb)
    return core if cv2.countNonZero(core) else inside


def density(rgb: np.ndarray, core: np.ndarray | None = None) -> np.ndarray:
    """The cell's median optical density per channel (3,), NaN for a crop with no cell pixels."""
    core = _cell_mask(rgb) if core is None else core.view(np.uint8)
    if not cv2.countNonZero(core):
        return np.full(3, np.nan)
    return median_density(_median_halves(rgb, core) / 2)


def median_density(median: np.ndarray) -> np.ndarray:
    """The optical density (3,) of a cell whose median pixel is `median` (3,)."""
    return -np.log(np.clip(median, 1, 254) / 255)


def _median_halves(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Twice np.median of each channel's masked uint8 pixels (3,): the sum of the lower and upper middle
    values (equal for an odd count), from a histogram (several times faster)."""
    counts = np.stack([cv2.calcHist([rgb], [c], mask, [256], [0, 256]).ravel() for c in range(3)])
    cum = np.cumsum(counts, axis=1)
    n = cum[0, -1]
    return (cum < (n + 1) // 2).sum(axis=1) + (cum < n // 2 + 1).sum(axis=1)  # levels below each middle value


def level_table(od: np.ndarray) -> np.ndarray:
    """(256, 3) uint8: each grey level of each channel with the channel's optical density `od` (3,) scaled to
    the reference's, I' = 255 (I / 255) ** scale; 0 stays 0 and no other level drops to black."""
    scale = np.clip(_REFERENCE_OD / np.maximum(od, 1e-6), 1 / MAX_SCALE, MAX_SCALE)
    lut = np.maximum(np.rint(255 * _LEVELS[:, None] ** scale[None, :]), 1).astype(np.uint8)
    lut[0] = 0
    return lut


@functools.cache
def median_tables() -> np.ndarray:
    """(3, 512, 256) uint8: row r of channel c is that channel's level_table for a cell whose median there is
    r / 2 (medians are whole or half levels); row 511 is the identity, for a crop without a cell. Each
    entry is computed as level_table computes it for any cell of that median (numpy's float64, once), so
    `standardised` and the graph (training/stain_graph.py) read the same levels."""
    rows = [level_table(median_density(np.full(3, r / 2))) for r in range(2 * 255 + 1)]
    rows.append(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1))
    tables = np.stack(rows).transpose(2, 0, 1).copy()
    tables.flags.writeable = False
    return tables


def standardised(rgb: np.ndarray, mode: str = DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray]:
    """A crop (RGB uint8, h x w x 3) with its cell moved to the reference stain (see the module's text;
    mode `none` leaves it as it is), and the cell's median optical density before (`density`)."""
    if mode not in MODES:
        raise ValueError(f"unknown stain mode {mode!r}")
    core = _cell_mask(rgb)
    if not cv2.countNonZero(core):
        return rgb, np.full(3, np.nan)
    halves = _median_halves(rgb, core)
    od = median_density(halves / 2)
    if mode == "none":
        return rgb, od
    lut = np.ascontiguousarray(median_tables()[_CHANNELS, halves].T)[None]  # (1, 256, 3): level_table(od)
    out = np.empty_like(rgb)
    out[:] = _REFERENCE_PIXEL  # the background and the rim around the cell: no outline to read
    return cv2.copyTo(cv2.LUT(np.ascontiguousarray(rgb), lut), core, out), od


def input_name(mode: str) -> str:
    """The name of a model's input layer, which records the stain mode its crops were prepared with."""
    return "rgb_uint8" if mode == "none" else f"rgb_uint8_stain_{mode}"


def mode_of_input(name: str) -> str:
    """The stain mode a model's input layer name records (models named plain `rgb_uint8` took crops as decoded)."""
    for mode in MODES:
        if name == input_name(mode):
            return mode
    return "none"


# --- the check: is this stain one the model was trained on? ---

# How far (ln of OD) a photo may lie beyond the training slides' span before it is referred, by stain mode.
# Chosen on synthetic stain shifts of held-out NIH slides (benchmarks/README.md). Standardised (od): a model lost
# at most 0.004 of sensitivity with every channel's OD from a quarter to 3x the slide's own, 0.006 at 4x and 0.21
# at 6x, where a dark stain leaves too few grey levels: 3x. As decoded (none): at 1.4x darker the worst slide's
# false calls went from 43% to 99%, and green alone 2x darker called 43% of the uninfected cells: 1.1x.
MARGINS = {"od": float(np.log(3)), "none": float(np.log(1.1))}
MIN_CELLS = 5  # fewer cells than this say too little about a photo's stain to check it


@dataclass(frozen=True)
class StainRange:
    """Per channel, the lowest and highest ln(median OD) of the training slides, and the margin allowed."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    margin: float = MARGINS[DEFAULT_MODE]
    slides: int = 0

    @classmethod
    def of_slides(cls, densities: np.ndarray, slides: np.ndarray, mode: str = DEFAULT_MODE) -> StainRange:
        """The span of the slides' stains, each slide its cells' median OD per channel, with the margin a
        model whose crops are prepared by `mode` holds in."""
        per_slide = summarise(densities, slides)
        values = np.log(np.array([v for v in per_slide.values() if not np.isnan(v).any()]))
        if not len(values):
            raise UserError("no training cell has stained pixels: cannot tell the training stain's range")
        return cls(tuple(map(float, values.min(axis=0))), tuple(map(float, values.max(axis=0))), MARGINS[mode],
                   len(values))

    def reason(self, densities: np.ndarray) -> str:
        """Why cells with these ODs (n, 3) are unlike training ("" when they are not, or are too few to say)."""
        d = np.asarray(densities, float).reshape(-1, 3)
        d = d[~np.isnan(d).any(axis=1)]
        if len(d) < MIN_CELLS:
            return ""
        value = np.log(np.median(d, axis=0))
        below, above = np.array(self.low) - self.margin - value, value - np.array(self.high) - self.margin
        worst = int(np.argmax(np.maximum(below, above)))
        if max(below[worst], above[worst]) <= 0:
            return ""
        side, ref = ("paler", self.low[worst]) if below[worst] > 0 else ("darker", self.high[worst])
        factor = np.exp(abs(value[worst] - ref))
        return (f"stain unlike the training data: {CHANNELS[worst]} {factor:.1f}x {side} than any of the "
                f"{self.slides} training slides")

    def save(self, path: str | Path, model_path: str | Path) -> None:
        atomic.write_json(path, {"low": self.low, "high": self.high, "margin": self.margin, "slides": self.slides,
                                 "model_sha256": file_sha256(model_path)})

    @classmethod
    def load(cls, path: str | Path, model_path: str | Path) -> StainRange:
        """The stored range, checked against its model; one clear error otherwise."""
        try:
            stored = json.loads(Path(path).read_text(encoding="utf-8"))
            out = cls(tuple(map(float, stored["low"])), tuple(map(float, stored["high"])), float(stored["margin"]),
                      int(stored["slides"]))
            sha = stored["model_sha256"]
        except FileNotFoundError:
            raise UserError(f"{path} not found: run `dvc repro` to record the training stain's range") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a stain range file written by this project") from None
        if len(out.low) != 3 or len(out.high) != 3:
            raise UserError(f"{path} is not a stain range file written by this project")
        if sha != file_sha256(model_path):
            raise UserError(f"{path} was written for another model than {model_path}: run `dvc repro`")
        return out


def referrals(stain_range: StainRange | None, densities: np.ndarray, groups: np.ndarray,
              names: np.ndarray) -> list[str]:
    """For each group (slide) of `names`, why its cells' stain is unlike the training slides' ("" when it
    is not, or without a stain range)."""
    if stain_range is None:
        return [""] * len(names)
    densities, groups = np.asarray(densities, float).reshape(-1, 3), np.asarray(groups)
    return [stain_range.reason(densities[groups == n]) for n in names]


def summarise(densities: np.ndarray, groups: np.ndarray) -> dict[str, np.ndarray]:
    """{group: the median of its cells' ODs (3,)}, cells without stained pixels left out."""
    d, groups = np.asarray(densities, float).reshape(-1, 3), np.asarray(groups)
    out = {}
    for g in np.unique(groups):
        rows = d[groups == g]
        rows = rows[~np.isnan(rows).any(axis=1)]
        out[str(g)] = np.median(rows, axis=0) if len(rows) else np.full(3, np.nan)
    return out
