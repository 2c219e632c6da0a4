"""A built-in, deterministic set of synthetic thin-smear cell crops, for trying the pipeline.

Each crop imitates an NIH crop: a stained, roughly round red cell of varied size and shape on
a black background, with central pallor, texture and stain that varies from slide to slide.
Parasitized cells carry compact dark-purple chromatin: dots, rings, amoeboid trophozoites.
Both classes carry artefacts that look a little like parasites (platelets at the rim, faint
stain blotches, debris), and a parasite covers a few percent of a cell at most, so the
classes cannot be told apart by mean colour: the network has to find the parasite.

Not for real smears: a model trained on these cells has learnt about these cells only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import SyntheticParams
from malaria_cnn.data import archive
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.images import encode_png
from malaria_cnn.data.sources import Cell

_PURPLE = np.array([78.0, 30.0, 112.0])  # Giemsa-stained chromatin, RGB


@dataclass(frozen=True)
class Stain:
    """One slide's staining: colour of the cells, of chromatin, and overall brightness."""

    cell: np.ndarray  # RGB
    chromatin: np.ndarray  # RGB
    brightness: float


def slide_name(i: int) -> str:
    """NIH-style slide prefix: C<patient>P<slide>thinF."""
    return f"C{901 + i}P{i + 1}thinF"


def _stain(rng: np.random.Generator) -> Stain:
    pink, mauve = np.array([214.0, 142.0, 150.0]), np.array([184.0, 146.0, 196.0])
    mix = rng.uniform(0, 1)
    cell = (1 - mix) * pink + mix * mauve + rng.normal(0, 6, 3)
    chromatin = _PURPLE * rng.uniform(0.8, 1.25) + rng.normal(0, 8, 3)
    return Stain(cell, np.clip(chromatin, 10, 160), float(rng.uniform(0.82, 1.1)))


def _blob(shape: tuple[int, int], rng: np.random.Generator, centre, kind: str, scale: float) -> np.ndarray:
    """A soft mask (0..1, float32) of one dark-staining body: dot, ring, trophozoite or speck."""
    mask = np.zeros(shape, np.float32)
    cy, cx = centre
    if kind == "dot":
        r = rng.uniform(2.5, 5.5) * scale
        cv2.circle(mask, (int(cx), int(cy)), max(1, round(r)), 1.0, -1, cv2.LINE_AA)
    elif kind == "ring":
        r = rng.uniform(4.5, 9.0) * scale
        cv2.circle(mask, (int(cx), int(cy)), max(2, round(r)), 1.0, max(1, round(1.6 * scale)), cv2.LINE_AA)
        a = rng.uniform(0, 2 * np.pi)
        dot = (int(cx + r * np.cos(a)), int(cy + r * np.sin(a)))
        cv2.circle(mask, dot, max(1, round(rng.uniform(2.0, 3.5) * scale)), 1.0, -1, cv2.LINE_AA)
    elif kind == "trophozoite":
        for _ in range(int(rng.integers(3, 6))):
            off = rng.normal(0, 3.5 * scale, 2)
            r = rng.uniform(2.5, 5.0) * scale
            cv2.circle(mask, (int(cx + off[1]), int(cy + off[0])), max(1, round(r)), 1.0, -1, cv2.LINE_AA)
    else:  # speck: a tiny artefact
        cv2.circle(mask, (int(cx), int(cy)), max(1, round(rng.uniform(1.0, 2.0) * scale)), 1.0, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(mask, (0, 0), 0.8 * scale)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float) -> None:
    a = (mask * opacity)[..., None]
    img[:] = img * (1 - a) + colour * a


def render_cell(rng: np.random.Generator, stain: Stain, parasitized: bool) -> np.ndarray:
    """Draw one cell crop as an RGB uint8 array."""
    h = int(rng.integers(100, 161))
    w = int(np.clip(h * rng.uniform(0.85, 1.15), 90, 175))
    scale = min(h, w) / 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2 + rng.normal(0, h * 0.02), w / 2 + rng.normal(0, w * 0.02)
    ry, rx = h * rng.uniform(0.39, 0.47), w * rng.uniform(0.39, 0.47)
    dy, dx = (yy - cy) / ry, (xx - cx) / rx
    theta, rad = np.arctan2(dy, dx), np.hypot(dy, dx)
    wobble = np.ones_like(rad)
    for k in range(2, 6):
        wobble += rng.uniform(0, 0.045) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = rad / wobble  # 0 at the centre, 1 at the membrane

    # body: stain colour, central pallor, a darker rim, texture
    tint = stain.cell * stain.brightness * rng.normal(1, 0.04)
    img = np.empty((h, w, 3), np.float32)
    img[:] = tint
    pallor = rng.uniform(8, 30) * np.exp(-((r / rng.uniform(0.35, 0.55)) ** 2))
    rim = rng.uniform(10, 30) * np.clip(r, 0, 1) ** 6
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 2.5 * scale)
    shade = pallor - rim + texture * rng.uniform(8, 16)
    img += shade[..., None]

    def inside(max_r: float) -> tuple[float, float]:
        a, d = rng.uniform(0, 2 * np.pi), max_r * np.sqrt(rng.uniform(0, 1))
        return cy + d * ry * np.sin(a), cx + d * rx * np.cos(a)

    # artefacts both classes share
    if rng.uniform() < 0.35:  # platelet at the rim: purple but pale and diffuse
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0.85, 1.05)
        blob = _blob((h, w), rng, (cy + d * ry * np.sin(a), cx + d * rx * np.cos(a)), "trophozoite", scale * 1.2)
        _paint(img, cv2.GaussianBlur(blob, (0, 0), 2.0 * scale), stain.chromatin * 1.5, rng.uniform(0.35, 0.6))
    if rng.uniform() < 0.35:  # faint stain blotch inside
        blob = np.zeros((h, w), np.float32)
        c = inside(0.6)
        cv2.circle(blob, (int(c[1]), int(c[0])), int(rng.uniform(9, 22) * scale), 1.0, -1)
        _paint(img, cv2.GaussianBlur(blob, (0, 0), 5 * scale), stain.chromatin, rng.uniform(0.08, 0.22))
    if rng.uniform() < 0.25:  # refractile speck: small, grey-blue, not chromatin
        _paint(img, _blob((h, w), rng, inside(0.8), "speck", scale), np.array([120.0, 120.0, 150.0]), 0.5)

    # the parasites
    if parasitized:
        n = int(rng.choice([1, 1, 1, 2, 2, 3]))
        for _ in range(n):
            kind = str(rng.choice(["dot", "ring", "ring", "trophozoite"]))
            _paint(img, _blob((h, w), rng, inside(0.75), kind, scale), stain.chromatin, rng.uniform(0.55, 0.95))

    img += rng.normal(0, 2.5, img.shape).astype(np.float32)  # sensor noise
    membrane = np.clip((wobble - rad) * min(ry, rx) / 1.5, 0, 1)[..., None]  # anti-aliased edge
    out = img * membrane
    if rng.uniform() < 0.3:  # debris on the black background
        for _ in range(int(rng.integers(1, 4))):
            a = rng.uniform(0, 2 * np.pi)
            c = (cy + 1.15 * ry * np.sin(a), cx + 1.15 * rx * np.cos(a))
            _paint(out, _blob((h, w), rng, c, "speck", scale), stain.chromatin * 1.3, rng.uniform(0.4, 0.9))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def plan(cfg: SyntheticParams) -> list[tuple[str, int]]:
    """(label, slide index) for every cell, in order: Parasitized cells come from infected slides only.

    About a quarter of the slides are uninfected, as in NIH's set, where some patients were negative.
    """
    rng = np.random.default_rng([cfg.seed, 0])
    n_infected = max(1, round(cfg.slides * 0.75))
    infected = rng.permutation(cfg.slides)[:n_infected]
    parasitized = rng.choice(infected, cfg.per_class)
    uninfected = rng.integers(0, cfg.slides, cfg.per_class)
    return [("Parasitized", int(s)) for s in parasitized] + [("Uninfected", int(s)) for s in uninfected]


def cells(cfg: SyntheticParams) -> list[Cell]:
    """The synthetic set: cfg.per_class cells of each class over cfg.slides slides, NIH-style names."""
    layout = plan(cfg)
    stains = [_stain(np.random.default_rng([cfg.seed, 1, s])) for s in range(cfg.slides)]

    def png(i: int) -> bytes:
        label, s = layout[i]
        rng = np.random.default_rng([cfg.seed, 2, i])  # one stream per cell: order-independent
        return encode_png(render_cell(rng, stains[s], parasitized=label == CLASS_NAMES[1]))

    with ThreadPoolExecutor(available_cores()) as pool:  # NumPy and OpenCV release the GIL
        pngs = list(tqdm(pool.map(png, range(len(layout))), total=len(layout), desc="generate", unit="cell",
                         disable=None))
    return [Cell(member=archive.member_name(label, f"{slide_name(s)}_IMG_synthetic_cell_{i:05d}.png"), label=label,
                 read=lambda data=data: data) for i, ((label, s), data) in enumerate(zip(layout, pngs))]
