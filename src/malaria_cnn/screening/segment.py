"""Red blood cells in a smear photo: classical, marker-controlled watershed segmentation.

In the spirit of NIH's Malaria Screener: a stain-contrast channel (255 - green: red cells absorb
green light, the background does not), stretched between percentiles inside the field of view and
thresholded by Otsu; holes that look like a cell's central pallor filled, and holes stained more than
the background (the pale, stippled inside of an enlarged infected cell); one marker per cell (Hough
circles of the expected size, and the distance map's peaks where no circle was found); a watershed
that floods the distance map from the markers, splitting touching and overlapping cells. Each region
then gets its verdict (`regions.py`): a red cell, an uncertain object (kept: what the rules cannot
tell from an infected cell), or left out with the reason, which `screen --truth` reports.

All of it runs on a copy shrunk so that a cell is about WORK_DIAMETER pixels across, whatever the
photo's size, and never larger than the photo nor than about MAX_WORK_PIXELS (cells are then fewer
pixels across); the cell diameter is estimated per photo unless given. Boxes are returned in the
photo's own pixels. The thresholds were tuned on the two shared batches of labelled photos in
../shared/data/fields (benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
from scipy import ndimage

from malaria_cnn.screening.field import field_mask
from malaria_cnn.screening.regions import KEPT, RED_CELL, UNCERTAIN, disc, renumber, verdicts

WORK_DIAMETER = 26.0  # pixels across a cell in the copy segmentation runs on
MAX_WORK_PIXELS = 16_000_000  # the copy's size at most: its int32 and float32 maps stay under about 1 GB
PROBE_SIDE = 800  # the longer side of the copy the cell diameter is estimated on
HOLE_SOLIDITY = 0.75  # holes at least this convex are a cell's pallor, not a gap between cells
PALE_HOLE = 1.0  # stained holes under this share of a cell's area are filled (0: none)
PALE_STAIN = 0.6  # a hole this far from the background's stain to the cells' threshold, or more, is inside a cell
# depth levels the watershed floods the distance map in: at 2, a marker takes its own cell's rim before a
# deeper neighbour does, which keeps overlapping cells whole (at 10, 2% fewer of the pale batch's plain cells were
# found: overlapping cells cut into slivers)
FLOOD_STEPS = 2
HOUGH_VOTES = 14  # edge pixels voting for a circle's centre (a cell is about 80 around at the work scale)


@dataclasses.dataclass
class Segmentation:
    """The cells found in one photo."""

    labels: np.ndarray  # int32 at the work scale: 0 background, i + 1 the i-th cell
    rgb: np.ndarray  # the photo at the work scale
    scale: float  # work pixels per photo pixel
    boxes: np.ndarray  # (n, 4) int: x, y, w, h of each cell's box in the photo's pixels
    slices: list  # (rows, columns) slices of each cell's box in `labels`
    diameter: float  # the cell diameter used, in the photo's pixels
    # each cell's kind: RED_CELL, or UNCERTAIN where the rules cannot tell (regions.verdicts)
    kinds: list[str] = dataclasses.field(default_factory=list)
    # the regions left out: their boxes (x, y, w, h, photo pixels) and why (regions.verdicts)
    dropped: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), int))
    dropped_why: list[str] = dataclasses.field(default_factory=list)


def shrink(img: np.ndarray, scale: float) -> np.ndarray:
    """`img` resized by `scale` (area averaging); unchanged at scale 1 or above."""
    if scale >= 1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def stain_channel(rgb: np.ndarray, field: np.ndarray) -> np.ndarray:
    """255 - green, stretched so the field's 1st and 99.5th percentiles become 0 and 255."""
    inv = 255 - rgb[..., 1]
    lo, hi = np.percentile(inv[field > 0], (1, 99.5)) if field.any() else (0, 255)
    scale = 255.0 / max(hi - lo, 1.0)
    return cv2.convertScaleAbs(inv, alpha=scale, beta=-lo * scale)


def _fill_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Fill the holes of a binary mask that look like a cell's central pallor: smaller than max_area
    pixels and convex (a gap enclosed by touching cells has concave sides, a pallor does not)."""
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return mask
    out = mask.copy()
    holes = []
    for c, h in zip(contours, hierarchy[0]):
        if h[3] < 0:
            continue
        area = cv2.contourArea(c)
        if area < max_area and (area < 4 or area >= HOLE_SOLIDITY * cv2.contourArea(cv2.convexHull(c))):
            holes.append(c)
    cv2.drawContours(out, holes, -1, 255, -1)
    return out


def foreground(channel: np.ndarray, field: np.ndarray, hole_area: float, pale_hole_area: float = 0.0) -> np.ndarray:
    """Cells (255) against background: Otsu's threshold over the field's pixels, pallor holes filled (convex,
    under hole_area pixels), and holes under pale_hole_area pixels that are stained (_fill_stained_holes)."""
    inside = channel[field > 0]
    if inside.size == 0:
        return np.zeros_like(channel)
    t, _ = cv2.threshold(inside.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = np.where((channel > t) & (field > 0), 255, 0).astype(np.uint8)
    mask = _fill_holes(mask, hole_area)
    if pale_hole_area:
        background = float(np.median(inside[inside <= t]))
        mask = _fill_stained_holes(mask, channel, background + PALE_STAIN * (t - background), pale_hole_area)
    return mask


def _fill_stained_holes(mask: np.ndarray, channel: np.ndarray, level: float, max_area: float) -> np.ndarray:
    """Fill the holes of a mask smaller than max_area pixels whose mean stain is at least `level`, whatever
    their shape: the pale, stippled inside of an enlarged infected cell (a gap between cells is as pale
    as the background)."""
    n, parts, stats, _ = cv2.connectedComponentsWithStats(255 - mask, connectivity=4)
    area = stats[:, cv2.CC_STAT_AREA]
    mean = np.bincount(parts.ravel(), weights=channel.ravel(), minlength=n) / np.maximum(area, 1)
    fill = (area < max_area) & (mean >= level)
    fill[parts[[0, 0, -1, -1], [0, -1, 0, -1]]] = False  # what touches the frame's corners is background
    return np.where(fill[parts], 255, mask).astype(np.uint8)


def estimate_diameter(mask: np.ndarray) -> float | None:
    """The median equivalent diameter of isolated cells (blobs at least 90% convex, clear of the
    frame's edge, debris left out), or None with fewer than 5 of them."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    h, w = mask.shape
    areas = []
    for c in contours:
        x, y, cw, ch = cv2.boundingRect(c)
        area = cv2.contourArea(c)
        inside = x > 0 and y > 0 and x + cw < w and y + ch < h
        if inside and area >= 30 and area >= 0.9 * cv2.contourArea(cv2.convexHull(c)):
            areas.append(area)
    areas = np.array(areas)
    areas = areas[areas >= 0.3 * np.median(areas)] if len(areas) else areas
    return float(2 * np.sqrt(np.median(areas) / np.pi)) if len(areas) >= 5 else None


def _peak_diameter(mask: np.ndarray) -> float | None:
    """Twice the median height of the distance map's peaks: for crowded fields with no isolated cell."""
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    peaks = dist[(dist >= cv2.dilate(dist, np.ones((7, 7), np.uint8))) & (dist >= 3)]
    return float(2 * np.median(peaks)) if peaks.size else None


def _probe_diameter(probe: np.ndarray, field: np.ndarray) -> float:
    """The cell diameter in the pixels of `probe`, a copy of the photo about PROBE_SIDE pixels long."""
    mask = foreground(stain_channel(probe, field), field, hole_area=probe.shape[0] * probe.shape[1])
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc(3))
    return estimate_diameter(mask) or _peak_diameter(mask) or max(probe.shape[:2]) / 15


def _circles(channel: np.ndarray, dist: np.ndarray, radius: float) -> np.ndarray:
    """Centres (n, 2: x, y) of cell-sized circles (Hough, on the cells' edges) lying well inside the
    foreground: these find cells packed edge to edge, which the distance map alone cannot."""
    found = cv2.HoughCircles(cv2.GaussianBlur(channel, (0, 0), 1.0), cv2.HOUGH_GRADIENT, dp=1,
                             minDist=0.9 * radius, param1=80, param2=HOUGH_VOTES,
                             minRadius=int(0.7 * radius), maxRadius=int(1.3 * radius + 1))
    if found is None:
        return np.zeros((0, 2))
    xy = found[0, :, :2]
    ix = np.clip(xy.round().astype(int), 0, [dist.shape[1] - 1, dist.shape[0] - 1])
    return xy[dist[ix[:, 1], ix[:, 0]] >= 0.5 * radius]


def _markers(mask: np.ndarray, channel: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One marker per cell (labels 1..n) and the distance map: Hough circle centres, and the peaks
    of the distance to the background (at least half a radius apart) where no circle was found."""
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    peaks = (dist >= cv2.dilate(dist, disc(radius)) - 1e-3) & (dist >= 0.35 * radius)
    _, _, _, centroids = cv2.connectedComponentsWithStats(peaks.astype(np.uint8), connectivity=8)
    centres = _circles(channel, dist, radius)
    extra = centroids[1:]
    if len(centres) and len(extra):
        gap = np.sqrt(((extra[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(axis=1)
        extra = extra[gap > 0.8 * radius]
    markers = np.zeros(mask.shape, np.int32)
    for i, (x, y) in enumerate(np.concatenate([centres, extra]), start=1):
        cv2.circle(markers, (int(round(x)), int(round(y))), max(1, int(0.2 * radius)), i, -1)
    markers[mask == 0] = 0
    return markers, dist


def _watershed(mask: np.ndarray, channel: np.ndarray, radius: float, steps: int) -> np.ndarray:
    """Flood the foreground from the markers, deepest first: the distance to the background falls
    in `steps` levels, and at each level every marker grows (8-connected) into the pixels at that
    depth or deeper that it reaches first. Touching cells meet along the valley between their peaks."""
    markers, dist = _markers(mask, channel, radius)
    labels = markers.astype(np.float32)  # OpenCV dilates float32 exactly for up to 2**24 labels
    kernel = np.ones((3, 3), np.uint8)
    inside = mask > 0
    for level in np.linspace(float(dist.max()), 0.0, steps + 1)[1:]:
        free = ((dist >= level) & inside & (labels == 0)).astype(np.uint8)
        while True:
            grown = cv2.dilate(labels, kernel)
            new = cv2.bitwise_and(free, (grown > 0).view(np.uint8))
            if not cv2.countNonZero(new):
                break
            cv2.copyTo(grown, new, labels)
            free = cv2.bitwise_and(free, 1 - new)
    return labels.astype(np.int32)


def _photo_boxes(slices: list, scale: float, w: int, h: int) -> np.ndarray:
    """(n, 4) int boxes x, y, w, h in the photo's pixels of regions' (rows, columns) slices at the work scale."""
    boxes = np.array([(sx.start, sy.start, sx.stop - sx.start, sy.stop - sy.start) for sy, sx in slices],
                     float).reshape(-1, 4)
    x0, y0 = np.floor(boxes[:, 0] / scale), np.floor(boxes[:, 1] / scale)
    x1, y1 = np.ceil((boxes[:, 0] + boxes[:, 2]) / scale), np.ceil((boxes[:, 1] + boxes[:, 3]) / scale)
    return np.stack([x0, y0, np.minimum(x1, w) - x0, np.minimum(y1, h) - y0], axis=1).astype(int)


def segment(rgb: np.ndarray, cell_diameter: float | None = None) -> Segmentation:
    """Find the red blood cells of an RGB photo; `cell_diameter` (photo pixels) skips the estimate."""
    h, w = rgb.shape[:2]
    probe_scale = min(1.0, PROBE_SIDE / max(h, w))
    probe = shrink(rgb, probe_scale)
    probe_field = field_mask(probe)  # found where thin ink is still black
    diameter = cell_diameter or _probe_diameter(probe, probe_field) / probe_scale
    scale = min(1.0, WORK_DIAMETER / diameter, np.sqrt(MAX_WORK_PIXELS / (h * w)))
    small = shrink(probe, scale / probe_scale) if scale < probe_scale else shrink(rgb, scale)
    scale = small.shape[1] / w
    field = cv2.resize(probe_field, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    field = np.where(field == 255, 255, 0).astype(np.uint8)
    radius = diameter * scale / 2
    channel = stain_channel(small, field)
    mask = foreground(channel, field, hole_area=0.5 * np.pi * radius**2, pale_hole_area=PALE_HOLE * np.pi * radius**2)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc(radius / 4))
    regions = _watershed(mask, channel, radius, FLOOD_STEPS)
    why = np.array(verdicts(regions, small, field, radius), object)
    labels, kept = renumber(regions, (why == KEPT) | (why == UNCERTAIN))
    slices = ndimage.find_objects(labels)
    boxes = _photo_boxes(slices, scale, w, h)
    dropped = [(box, str(r)) for box, r in zip(ndimage.find_objects(regions), why)
               if box is not None and r and r != UNCERTAIN]
    kinds = [UNCERTAIN if why[i] == UNCERTAIN else RED_CELL for i in kept]
    return Segmentation(labels, small, scale, boxes, slices, diameter, kinds,
                        _photo_boxes([box for box, _ in dropped], scale, w, h), [r for _, r in dropped])
