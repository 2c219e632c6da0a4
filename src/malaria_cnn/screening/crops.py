"""Cut found cells out of a photo as NIH's crops were cut, and make them the model's input.

An NIH crop is one cell on black in its tight box. A cut cell, its rim trimmed (`trim`), becomes
the model's input through `images.cell_input`, the steps `images.load_cell` (which preprocess decodes
training crops with) takes after decoding: the model sees a cell from a photo exactly as it would see
the same trimmed cell saved as a PNG crop and preprocessed (tests/screening/test_crops.py checks it bit
for bit), without encoding and decoding a file per cell.
"""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.data import images, stain
from malaria_cnn.screening.segment import Segmentation

_FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # lossless all the same; level 1 is several times faster
# lossless too, and about 2.5x faster again on cut cells (whose rows repeat the one above, and runs of black),
# for no larger a file: each row as its difference from the one above, compressed as runs
FASTEST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
               cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
# The share of a cell's diameter trimmed off its rim before it is scored. Where cells touch, a segmentation's
# outline wanders by a few pixels: the rim of a cut cell carries slivers of its neighbours and of the gap
# between them, which a model trained on NIH's crops took for parasites. Chosen by benchmarks/stain.py on the
# shared pale photos (parasitized-cell precision 0.10 untrimmed, 0.28 trimmed by 6%; recall 0.90 and 0.88).
TRIM = 0.06


def cut(rgb: np.ndarray, seg: Segmentation, i: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The i-th cell of `seg` on black in its tight box, its mask (bool) there, and the box (x, y, w, h
    in the photo's pixels).

    The mask is the cell's region scaled up from the work scale; along its rim, where scaling up
    blurs the outline, a pixel stays only if its green is closer to the cell's than to the
    background's (the box's pixels outside the region), so no halo of background is cut with it.
    """
    x, y, w, h = (int(v) for v in seg.boxes[i])
    sy, sx = seg.slices[i]
    region = (seg.labels[sy, sx] == i + 1).astype(np.float32)
    soft = cv2.resize(region, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = soft >= 0.5
    crop = rgb[y:y + h, x:x + w].copy()
    rim = mask & (soft < 0.99)
    outside, inside = crop[..., 1][soft < 0.01], crop[..., 1][soft >= 0.99]
    if len(outside) and len(inside):
        middle = (np.median(outside) + np.median(inside)) / 2
        darker = np.median(inside) < np.median(outside)
        mask &= ~rim | ((crop[..., 1] < middle) if darker else (crop[..., 1] > middle))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows):  # tight again after trimming
        crop, mask = crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        x, y, w, h = x + int(cols[0]), y + int(rows[0]), mask.shape[1], mask.shape[0]
    crop[~mask] = 0
    return crop, mask, (x, y, w, h)


def trim(crop: np.ndarray) -> np.ndarray:
    """A cut cell (on black) with TRIM of its diameter taken off its rim, blackened."""
    inside = (crop.max(axis=2) > 0).astype(np.uint8)
    radius = int(round(TRIM * 2 * np.sqrt(inside.sum() / np.pi)))
    if radius < 1:
        return crop
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    kept = cv2.erode(inside, kernel, borderValue=0)
    if not kept.any():  # a sliver thinner than the trim: scored as it is
        return crop
    return cv2.bitwise_and(crop, crop, mask=kept)


def to_png(crop: np.ndarray, params: list[int] = _FAST_PNG) -> bytes:
    """A cut cell as the bytes of a PNG file (RGB in, the file's own channel order out), encoded with
    OpenCV's `params` (another file, the same pixels)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise images.ImageError("PNG encoding failed")
    return buf.tobytes()


def model_input(crop: np.ndarray, size: int, stain_mode: str = stain.DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray]:
    """The model's input for a cut cell, trimmed, as training would make it of the trimmed cell saved as a crop
    file, and the cell's optical density (the stain check's measure)."""
    return images.cell_input(trim(crop), size, stain_mode)
