"""Synthetic smear photos with known boxes: the built-in synthetic cells laid on a smear background.

Cells touch and overlap (a share of them is placed against a neighbour), one or two white blood
cells (a pale cytoplasm around a dark, lobed nucleus) lie among them, and every cell's box and
label is known: for fast tests of segmentation and of the whole `screen` command.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from malaria_cnn.data.sources import synthetic
from malaria_cnn.screening.truth import Box

_BACKGROUND = np.array([226.0, 224.0, 230.0])  # RGB of the smear between cells


@dataclass(frozen=True)
class Field:
    rgb: np.ndarray  # (h, w, 3) uint8
    cells: list[Box]  # red cells, kind uninfected or parasitized
    white: list[Box]  # white blood cells: not red cells


def _cell(rng: np.random.Generator, stain: synthetic.Stain, parasitized: bool, diameter: float):
    """(RGB float32, alpha float32) of one synthetic cell scaled to about `diameter` pixels across."""
    crop = synthetic.render_cell(rng, stain, parasitized)
    body = (crop.max(axis=2) > 12).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(body)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
    x, y, w, h = stats[keep, :4]
    crop, alpha = crop[y:y + h, x:x + w], (labels[y:y + h, x:x + w] == keep).astype(np.float32)
    f = diameter * rng.uniform(0.9, 1.1) / max(w, h)
    size = (max(4, round(w * f)), max(4, round(h * f)))
    rgb = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    return rgb, np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_AREA), 0, 1)


def _white(rng: np.random.Generator, diameter: float):
    """(RGB, alpha) of a white blood cell: pale lilac cytoplasm around three or four purple lobes."""
    d = int(diameter * rng.uniform(1.6, 1.9))
    yy, xx = np.mgrid[0:d, 0:d]
    alpha = (np.hypot(yy - d / 2, xx - d / 2) < d / 2 - 1).astype(np.float32)
    rgb = np.empty((d, d, 3), np.float32)
    rgb[:] = (208, 196, 222)
    nucleus = np.zeros((d, d), np.float32)
    for a in rng.uniform(0, 2 * np.pi, int(rng.integers(3, 5))):
        c = (int(d / 2 + d * 0.17 * np.cos(a)), int(d / 2 + d * 0.17 * np.sin(a)))
        cv2.circle(nucleus, c, int(d * rng.uniform(0.14, 0.2)), 1.0, -1, cv2.LINE_AA)
    rgb = rgb * (1 - nucleus[..., None]) + np.array([88.0, 26.0, 112.0]) * nucleus[..., None]
    return rgb, alpha


def _mature(rng: np.random.Generator, stain: synthetic.Stain, diameter: float):
    """(RGB, alpha) of a cell holding a mature parasite (a gametocyte or schizont): enlarged a third, oval
    (1.5 to 1.7 times longer than wide), a pale stippled inside and dark purple pigment over about a
    third of it: what a white blood cell's nucleus, the shape filters and the pallor filling each took for
    something else."""
    r = diameter * rng.uniform(0.62, 0.7)
    aspect = rng.uniform(1.5, 1.7)
    a, b = r * np.sqrt(aspect), r / np.sqrt(aspect)
    if rng.uniform() < 0.5:
        a, b = b, a
    h, w = int(2 * b) + 3, int(2 * a) + 3
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - w / 2) / a) ** 2 + ((yy - h / 2) / b) ** 2
    alpha = np.clip((1 - inside) * a / 2, 0, 1).astype(np.float32)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = stain.cell
    pale = np.clip(1.4 * (0.85 - inside), 0, 1)[..., None]  # the inside paler than the rim
    rgb = rgb * (1 - pale) + np.array([232.0, 206.0, 222.0]) * pale
    pigment = np.zeros((h, w), np.float32)
    while pigment.sum() < 0.3 * (inside < 1).sum():
        t, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.75)
        c = (int(w / 2 + d * a * np.cos(t)), int(h / 2 + d * b * np.sin(t)))
        cv2.circle(pigment, c, int(diameter * rng.uniform(0.06, 0.1)), 1.0, -1, cv2.LINE_AA)
    pigment *= inside < 1
    rgb = rgb * (1 - pigment[..., None]) + np.array([70.0, 20.0, 100.0]) * pigment[..., None]
    return rgb, alpha


def _paste(img: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    h, w = alpha.shape
    a = alpha[..., None]
    img[y:y + h, x:x + w] = img[y:y + h, x:x + w] * (1 - a) + rgb * a


def make_field(seed: int, width: int = 640, height: int = 480, cells: int = 36, diameter: float = 44.0,
               parasitized: float = 0.15, white: int = 1, touching: float = 0.4, mature: float = 0.0) -> Field:
    """A synthetic smear photo: `cells` red cells about `diameter` pixels across, a share
    `parasitized` of them infected (a share `mature` of those holding a mature parasite: `_mature`),
    `white` white blood cells, a share `touching` placed against a neighbour (centres 0.75 to 0.95
    diameters apart), the others apart from all."""
    rng = np.random.default_rng([seed, 14])
    stain = synthetic.Stain(cell=np.array([210.0, 140.0, 158.0]) + rng.normal(0, 6, 3),
                            chromatin=np.array([78.0, 30.0, 112.0]) * rng.uniform(0.8, 1.2), brightness=1.0)
    img = np.empty((height, width, 3), np.float32)
    img[:] = _BACKGROUND + rng.normal(0, 4, 3)
    gradient = np.linspace(-6, 6, width, dtype=np.float32)[None, :, None]
    img += gradient + cv2.GaussianBlur(rng.normal(0, 3, (height, width)).astype(np.float32), (0, 0), 8)[..., None]
    centres: list[tuple[float, float, float]] = []  # x, y, radius of everything placed
    out_cells, out_white = [], []

    def place(rgb, alpha, against: bool) -> tuple[int, int] | None:
        h, w = alpha.shape
        r = max(h, w) / 2
        for _ in range(200):
            if against and centres:
                cx, cy, cr = centres[int(rng.integers(len(centres)))]
                a, dist = rng.uniform(0, 2 * np.pi), (cr + r) * rng.uniform(0.75, 0.95)
                x, y = cx + dist * np.cos(a), cy + dist * np.sin(a)
            else:
                x, y = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
            if not (r + 2 <= x <= width - r - 2 and r + 2 <= y <= height - r - 2):
                continue
            gaps = [np.hypot(x - cx, y - cy) / (cr + r) for cx, cy, cr in centres]
            if all(g >= (0.75 if against else 1.1) for g in gaps):
                centres.append((x, y, r))
                x0, y0 = int(round(x - w / 2)), int(round(y - h / 2))
                _paste(img, rgb, alpha, x0, y0)
                return x0, y0
        return None

    for _ in range(white):
        rgb, alpha = _white(rng, diameter)
        if (at := place(rgb, alpha, against=False)) is not None:
            out_white.append(Box(at[0], at[1], alpha.shape[1], alpha.shape[0], "white"))
    for _ in range(cells):
        infected = bool(rng.uniform() < parasitized)
        if infected and rng.uniform() < mature:
            rgb, alpha = _mature(rng, stain, diameter)
        else:
            rgb, alpha = _cell(rng, stain, infected, diameter)
        if (at := place(rgb, alpha, against=bool(rng.uniform() < touching))) is not None:
            out_cells.append(Box(at[0], at[1], alpha.shape[1], alpha.shape[0],
                                 "parasitized" if infected else "uninfected"))
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    return Field(np.clip(img, 0, 255).round().astype(np.uint8), out_cells, out_white)


def coco(fields: dict[str, Field]) -> dict:
    """The fields' boxes as a COCO document (red cells; white cells as 'leukocyte')."""
    names = ["red blood cell", "ring", "leukocyte", "difficult"]
    kinds = {"uninfected": 1, "parasitized": 2, "white": 3, "difficult": 4}
    images, annotations = [], []
    for i, (name, f) in enumerate(fields.items(), start=1):
        images.append({"id": i, "file_name": name, "width": f.rgb.shape[1], "height": f.rgb.shape[0]})
        for b in f.cells + f.white:
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": kinds[b.kind],
                                "bbox": [b.x, b.y, b.w, b.h], "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": k, "name": n} for k, n in zip(range(1, 5), names)]}
