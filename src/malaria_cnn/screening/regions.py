"""Which regions of a segmentation are red cells: each region's verdict, and why the others are dropped.

A region is dropped when it is debris (far smaller than the median cell), a sliver cut by the frame or
the field's edge, or a white blood cell (a purple nucleus far darker than the red cells); ragged or
elongated regions (circularity, aspect) are dropped too, unless the rules cannot tell them from an
infected cell, which may be enlarged, oval, ragged and hold a dark parasite: those are kept as
uncertain objects, for the classifier and a person to judge. The thresholds were tuned on the two
shared batches of labelled photos in ../shared/data/fields (benchmarks/README.md).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

MIN_AREA = 0.5  # regions below this share of the median cell's area are debris
EDGE_MIN_AREA = 0.8  # ... and below this when cut by the frame or the field's edge
MIN_CIRCULARITY = 0.5  # 4 pi area / perimeter^2 of a whole cell's outline is at least this
MAX_ASPECT = 1.5  # ... and its box is at most this much longer than wide
NUCLEUS_DARKNESS = 0.35  # a nucleus pixel is this much darker in green than the median red-cell pixel, or more
NUCLEUS_SHARE = 0.15  # regions with more of their area in such pixels are white blood cells
NUCLEUS_ONLY = 0.6  # ... and at least this share, whatever their size: a nucleus, or a lobe of one

# Regions the rules above drop as white, ragged or elongated that are no larger than UNCERTAIN_AREA median
# cells, no less circular than UNCERTAIN_CIRCULARITY, no longer than UNCERTAIN_ASPECT and less than
# NUCLEUS_ONLY nucleus are kept as UNCERTAIN (their kind): an infected cell may be enlarged, oval, ragged or
# hold a dark parasite as a white cell holds its nucleus (two infected cells on the shared photos held 0.38
# and 0.40 of their area in nucleus-like pixels; white cells' regions there, 0.16 to 0.73)
UNCERTAIN_AREA = 2.0
UNCERTAIN_CIRCULARITY = 0.4
UNCERTAIN_ASPECT = 1.8

KEPT = ""
RED_CELL = "red cell"  # the kind of a region kept as a red cell
UNCERTAIN = "uncertain object"  # ... and of one kept though the rules cannot tell what it is
DEBRIS = "debris"
EDGE = "cut by the edge"
WHITE = "white blood cell"
RAGGED = "ragged"
ELONGATED = "elongated"


def disc(diameter: float) -> np.ndarray:
    """An elliptic structuring element about `diameter` pixels across (odd, at least 3)."""
    k = max(3, int(round(diameter)) | 1)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def nucleus(rgb: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Pixels stained like a white blood cell's nucleus: purple (blue well above green) and far darker
    in green than the red cells (black ink, such as a burned-in scale bar, is not purple)."""
    green = rgb[..., 1].astype(np.int16)
    typical = np.median(green[cells]) if cells.any() else 128
    return (green < NUCLEUS_DARKNESS * typical) & (rgb[..., 2] > green + 40)


def shape(region: np.ndarray) -> tuple[float, float]:
    """(circularity 4 pi area / perimeter^2, longer / shorter side of the box) of a 0/1 region."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea)
    perimeter = cv2.arcLength(c, True)
    h, w = region.shape
    return 4 * np.pi * float(region.sum()) / max(perimeter**2, 1.0), max(h, w) / max(min(h, w), 1)


def median_area(area: np.ndarray, radius: float) -> float:
    """The median area of the regions of about a cell's size (a third to three times a disc of `radius`)."""
    expected = np.pi * radius**2
    typical = area[(area >= 0.3 * expected) & (area <= 3 * expected)]
    return float(np.median(typical)) if typical.size else expected


def verdicts(labels: np.ndarray, rgb: np.ndarray, field: np.ndarray, radius: float) -> list[str]:
    """Each region's verdict (regions 1..n of `labels`, in order): KEPT, or why it is not a red cell."""
    n = int(labels.max())
    if n == 0:
        return []
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n + 1).astype(float)
    purple = np.bincount(flat, weights=nucleus(rgb, labels > 0).ravel(), minlength=n + 1)
    rim = cv2.dilate(255 - field, disc(3))
    rim[[0, -1], :] = 255
    rim[:, [0, -1]] = 255
    at_edge = np.bincount(flat, weights=(rim > 0).ravel(), minlength=n + 1) > 0
    median = median_area(area[1:], radius)
    out = []
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or area[i] < MIN_AREA * median:
            out.append(DEBRIS)
        elif at_edge[i] and area[i] < EDGE_MIN_AREA * median:
            out.append(EDGE)
        else:
            circularity, aspect = shape((labels[box] == i).astype(np.uint8))
            white = purple[i] > NUCLEUS_SHARE * area[i]
            why = WHITE if white else RAGGED if circularity < MIN_CIRCULARITY else \
                ELONGATED if aspect > MAX_ASPECT else KEPT
            unsure = purple[i] < NUCLEUS_ONLY * area[i] and area[i] <= UNCERTAIN_AREA * median and \
                circularity >= UNCERTAIN_CIRCULARITY and aspect <= UNCERTAIN_ASPECT
            out.append(UNCERTAIN if why and unsure else why)
    return out


def renumber(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`labels` with only the regions where keep[i - 1], renumbered 1..m in reading order (top to bottom,
    then left to right, by their boxes' top-left corners), and the old index (0-based) of each new region."""
    n = int(labels.max())
    top = np.full(n + 1, np.inf)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None:
            top[i] = box[0].start * labels.shape[1] + box[1].start
    kept = np.concatenate([[False], np.asarray(keep, bool)])
    order = np.flatnonzero(kept)[np.argsort(top[kept], kind="stable")]
    new = np.zeros(n + 1, np.int32)
    new[order] = np.arange(1, len(order) + 1)
    return new[labels], order - 1
