"""What `malaria-cnn screen` writes: the rows of its CSVs, per-slide parasitemia with its interval,
annotated photos and the sheet of cells called parasitized; and its one-line summary."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.evaluation.gallery import TILE, contact_sheet
from malaria_cnn.screening.screen import Photo

CELLS = ["image", "cell", "x", "y", "w", "h", "p_parasitized", "label"]
IMAGES = ["image", "slide", "cells", "parasitized", "parasitemia", "error"]
SLIDES = ["slide", "images", "cells", "parasitized", "parasitemia", "ci_lower", "ci_upper"]
Z95 = 1.959964  # the normal quantile of a 95% interval
SHEET_MAX = 200  # cells shown on the parasitized sheet, most probable first
SHEET_COLUMNS = 10
PARASITIZED = CLASS_NAMES[POSITIVE]
_COLOURS = {PARASITIZED: (230, 30, 30), CLASS_NAMES[1 - POSITIVE]: (20, 170, 60)}  # RGB


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion k / n (95% by default): sound at 0 and at few cells."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(k: int, n: int):
    return round(k / n, 6) if n else ""


def cell_rows(photo: Photo) -> list[tuple]:
    return [(photo.name, i + 1, *map(int, box), round(float(p), 6), label)
            for i, (box, p, label) in enumerate(zip(photo.boxes, photo.p, photo.labels))]


def image_row(photo: Photo) -> tuple:
    if photo.error:
        return (photo.name, photo.slide, "", "", "", photo.error)
    k = sum(label == PARASITIZED for label in photo.labels)
    return (photo.name, photo.slide, len(photo.labels), k, _share(k, len(photo.labels)), "")


def slide_rows(image_rows: list[tuple]) -> list[tuple]:
    """Per slide (in order of first appearance): photos read, cells, parasitized, parasitemia and its
    95% Wilson interval over the slide's cells pooled."""
    slides: dict[str, list[int]] = {}
    for _, slide, cells, parasitized, _, error in image_rows:
        if not error:
            s = slides.setdefault(slide, [0, 0, 0])
            s[0], s[1], s[2] = s[0] + 1, s[1] + cells, s[2] + parasitized
    rows = []
    for slide, (photos, cells, k) in slides.items():
        lo, hi = wilson(k, cells)
        rows.append((slide, photos, cells, k, _share(k, cells), "" if not cells else round(lo, 6),
                     "" if not cells else round(hi, 6)))
    return rows


def annotated(photo: Photo) -> np.ndarray:
    """The photo (RGB) with every found cell outlined, red if called parasitized, green if not."""
    img = photo.rgb.copy()
    thickness = max(2, round(max(img.shape[:2]) / 640))
    for outline, label in zip(photo.outlines, photo.labels):
        cv2.polylines(img, [outline], True, _COLOURS[label], thickness)
    return img


def write_image(dest: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image atomically, encoded by its suffix (.jpg at quality 90, or .png)."""
    jpeg = Path(dest).suffix.lower() in (".jpg", ".jpeg")
    _, buf = cv2.imencode(Path(dest).suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [])
    atomic.write_bytes(dest, buf.tobytes())


def sheet_tiles(photo: Photo) -> list[tuple[float, np.ndarray, str, str]]:
    """(p, tile, caption, caption) for the photo's cells called parasitized."""
    return [(float(p), cv2.resize(cut, (TILE, TILE), interpolation=cv2.INTER_AREA), f"{photo.file_name[:16]} #{i + 1}",
             f"p={p:.3f}") for i, (cut, p, label) in enumerate(zip(photo.cut, photo.p, photo.labels))
            if label == PARASITIZED]


def parasitized_sheet(tiles: list[tuple[float, np.ndarray, str, str]], threshold: float) -> np.ndarray:
    """The contact sheet of cells called parasitized, most probable first, at most SHEET_MAX."""
    shown = sorted(tiles, key=lambda t: -t[0])[:SHEET_MAX]
    title = (f"{len(tiles):,} cells called Parasitized at threshold {threshold:.3f}"
             + (f" (the {SHEET_MAX} most probable shown)" if len(tiles) > SHEET_MAX else "")
             + "; caption: photo, cell number in cells.csv, P(Parasitized)")
    flat = [(tile, a, b) for _, tile, a, b in shown]
    rows = [("", flat[i:i + SHEET_COLUMNS]) for i in range(0, len(flat), SHEET_COLUMNS)] or [("", [])]
    return contact_sheet(title, rows, SHEET_COLUMNS)


def unique_name(stem: str, taken: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`... when photos from different folders share a name."""
    name, k = stem, 1
    while name.lower() in taken:
        k += 1
        name = f"{stem}-{k}"
    taken.add(name.lower())
    return name


def summary(image_rows: list[tuple], threshold: float, out: str | Path) -> str:
    """One line: photos read, cells found, how many called Parasitized, photos that failed."""
    read = [r for r in image_rows if not r[5]]
    cells, k = sum(r[2] for r in read), sum(r[3] for r in read)
    failed = len(image_rows) - len(read)
    share = f" ({k / cells:.2%})" if cells else ""
    fails = (f"; {failed:,} photo{'s' if failed != 1 else ''} failed (reasons in {Path(out) / 'images.csv'})"
             if failed else "")
    return (f"screen: {len(read):,} photos read, {cells:,} red cells found, {k:,} called Parasitized{share} "
            f"at threshold {threshold:.3f}{fails} -> {out}")

