"""The field of view: the bright disc of a microscope photo on black, or the whole frame; black ink
burned into the photo (a scale bar, its label) is left out either way."""

from __future__ import annotations

import cv2
import numpy as np

DARK = 40  # a pixel whose brightest channel is below this is outside the field (black surround)
MIN_DARK_SHARE = 0.04  # less black than this: the photo is all field


def field_mask(rgb: np.ndarray) -> np.ndarray:
    """uint8 mask (255 inside) of the field of view of an RGB photo.

    When the photo has a black surround (at least MIN_DARK_SHARE of it, touching the frame's
    corners), the field is the convex hull of the largest bright region, shrunk by 1.5% of its
    size so the vignetted rim is left out; otherwise the whole frame. Black pixels inside it (ink:
    stained cells are never black) and their neighbours are left out too.
    """
    h, w = rgb.shape[:2]
    r, g, b = cv2.split(rgb)
    bright = (cv2.max(cv2.max(r, g), b) >= DARK).astype(np.uint8)
    ink = cv2.dilate(1 - bright, np.ones((3, 3), np.uint8)) > 0
    whole = np.where(ink, 0, 255).astype(np.uint8)
    corners = bright[[0, 0, -1, -1], [0, -1, 0, -1]]
    if (1 - bright.mean()) < MIN_DARK_SHARE or corners.sum() > 2:
        return whole
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if n < 2:
        return whole
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    if mask.mean() < 255 * 0.2:  # a small bright thing on a dark photo is not a field of view
        return whole
    k = max(3, int(0.015 * np.sqrt(mask.sum() / 255)) | 1)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    mask[ink] = 0
    return mask
