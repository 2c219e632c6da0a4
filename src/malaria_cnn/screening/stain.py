"""Reinhard stain normalisation: move a photo's cell colours toward the training crops' in Lab space.

Each Lab channel of the cell pixels is shifted and scaled so its mean and standard deviation over
the photo's cells become those over the training crops' cells (black background left out, and
left black). A remedy to try for another lab's stain, not a cure: the benchmark reports its effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core.errors import UserError

_BLACK = 10  # crop pixels darker than this in every channel are background


@dataclass(frozen=True)
class LabStats:
    mean: np.ndarray  # (3,) L, a, b
    std: np.ndarray  # (3,)


def _lab(rgb_pixels: np.ndarray) -> np.ndarray:
    """(n, 3) uint8 RGB -> (n, 3) float32 Lab (L 0-100)."""
    return cv2.cvtColor(rgb_pixels.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2LAB).reshape(-1, 3)


def stats(rgb_pixels: np.ndarray) -> LabStats:
    """Lab mean and standard deviation of (n, 3) RGB pixels."""
    lab = _lab(rgb_pixels)
    return LabStats(lab.mean(axis=0), np.maximum(lab.std(axis=0), 1e-3))


def _cell_pixels(x: np.ndarray) -> np.ndarray:
    """The pixels of crops (n, s, s, 3) inside their cells, a pixel clear of the black background."""
    inside = (x.max(axis=3) >= _BLACK).astype(np.uint8)
    inside = np.stack([cv2.erode(m, np.ones((3, 3), np.uint8)) for m in inside]) > 0
    return x[inside]


def reference(npz_path: str | Path, per_slide: int = 200) -> LabStats:
    """The typical slide's cell colours in a preprocessed cells.npz (the model's training data): the
    Lab mean and standard deviation of each slide's cells (up to `per_slide` crops), averaged over
    slides. Pooling all slides instead would count the spread between stains as a cell's own."""
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            x, slides = npz["x"], npz["slide"]
    except FileNotFoundError:
        raise UserError(f"--stain-reference: {npz_path} not found (run dvc repro, or give a cells.npz)") from None
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"--stain-reference: {npz_path} is not a cells.npz ({exc})") from None
    means, stds = [], []
    for slide in np.unique(slides):
        pixels = _cell_pixels(x[np.flatnonzero(slides == slide)[:per_slide]])
        if len(pixels):
            s = stats(pixels)
            means.append(s.mean)
            stds.append(s.std)
    if not means:
        raise UserError(f"--stain-reference: {npz_path} holds no cell pixels")
    return LabStats(np.mean(means, axis=0), np.mean(stds, axis=0))


def normalise(crop: np.ndarray, mask: np.ndarray, source: LabStats, target: LabStats) -> np.ndarray:
    """`crop` (RGB uint8) with its `mask` pixels moved from `source` colour statistics to `target`'s."""
    out = crop.copy()
    if not mask.any():
        return out
    lab = _lab(crop[mask])
    lab = (lab - source.mean) / source.std * target.std + target.mean
    lab[:, 0] = np.clip(lab[:, 0], 0, 100)
    rgb = cv2.cvtColor(lab.reshape(-1, 1, 3).astype(np.float32), cv2.COLOR_LAB2RGB).reshape(-1, 3)
    out[mask] = np.clip(rgb * 255 + 0.5, 1, 255).astype(np.uint8)  # never pure black: that is background
    return out
