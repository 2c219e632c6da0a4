"""From smear photos to parasitemia: photo -> red cells -> one crop per cell -> P(Parasitized) -> rows.

Photos are read as `malaria-cnn predict` reads crops (files, folders, zips, unsafe zip entries
refused) and decoded by the same checked path (truncated files, decompression bombs). Photos are
read, segmented and cut on a thread per core while the model scores the photo before; a photo that
cannot be used gets its row with the reason and the run goes on.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from malaria_cnn.core.labels import call
from malaria_cnn.data import images, stain
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.slides import slide_of
from malaria_cnn.release.predict import Item, items
from malaria_cnn.screening import crops
from malaria_cnn.screening.segment import segment

MAX_PIXELS = 64_000_000  # photos with more pixels are refused before decoding (decompression bombs)
MIN_SIDE = 64  # ... and photos with a shorter side


@dataclass
class Photo:
    """One input file, screened: its found cells (boxes, outlines, model inputs) or why it failed."""

    name: str
    slide: str
    error: str = ""
    rgb: np.ndarray | None = None
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), int))
    outlines: list[np.ndarray] = field(default_factory=list)  # contours in the photo's pixels
    inputs: np.ndarray | None = None  # (n, size, size, 3) uint8
    density: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # each cell's optical density (stain.py)
    referred: str = ""  # why the photo is referred to a microscopist instead of counted ("" when it is counted)
    cut: list[np.ndarray] = field(default_factory=list)  # each cell on black, photo pixels
    p: np.ndarray = field(default_factory=lambda: np.zeros(0))  # P(Parasitized) per cell, once scored
    labels: list[str] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        """The photo's own file name (a zip entry's name without the archive's)."""
        return posixpath.basename(self.name.rsplit(":", 1)[-1].replace("\\", "/"))


def _outline(seg, i: int) -> np.ndarray:
    sy, sx = seg.slices[i]
    region = (seg.labels[sy, sx] == i + 1).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea).astype(np.float32)
    c += (sx.start, sy.start)
    return ((c + 0.5) / seg.scale).astype(np.int32)


def prepare(item: Item, size: int, cell_diameter: float | None = None, slide_pattern: str = "",
            stain_mode: str = stain.DEFAULT_MODE, stain_range: stain.StainRange | None = None) -> Photo:
    """Decode, segment and cut one photo, and check its cells' stain against `stain_range`; its `error`
    says why when it cannot be used."""
    name = posixpath.basename(item.name.rsplit(":", 1)[-1].replace("\\", "/"))
    photo = Photo(item.name, slide_of(name, slide_pattern) or name)
    if item.problem:
        photo.error = item.problem
        return photo
    try:
        rgb = images.decode_rgb(item.data, MIN_SIDE, MAX_PIXELS)
    except images.ImageError as exc:
        photo.error = str(exc)
        return photo
    seg = segment(rgb, cell_diameter)
    inputs = np.zeros((len(seg.boxes), size, size, 3), np.uint8)
    density = np.zeros((len(seg.boxes), 3))
    boxes = seg.boxes.copy()
    for i in range(len(seg.boxes)):
        cell, _, boxes[i] = crops.cut(rgb, seg, i)
        inputs[i], density[i] = crops.model_input(cell, size, stain_mode)
        photo.cut.append(cell)
        photo.outlines.append(_outline(seg, i))
    photo.rgb, photo.boxes, photo.inputs, photo.density = rgb, boxes, inputs, density
    photo.referred = stain_range.reason(density) if stain_range is not None else ""
    return photo


def _ahead(pool: ThreadPoolExecutor, fn: Callable[[Item], Photo], seq: Iterable[Item], depth: int) -> Iterator[Photo]:
    """fn over seq on the pool, at most `depth` photos in flight, results in input order."""
    pending: list[Future] = []
    for item in seq:
        pending.append(pool.submit(fn, item))
        if len(pending) > depth:
            yield pending.pop(0).result()
    for fut in pending:
        yield fut.result()


def screen(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], size: int, threshold: float,
           cell_diameter: float | None = None, slide_pattern: str = "", stain_mode: str = stain.DEFAULT_MODE,
           stain_range: stain.StainRange | None = None, progress: bool | None = None) -> Iterator[Photo]:
    """Every input file as a Photo, in input order, its cells scored at `threshold` (a referred photo's too:
    the caller counts it apart).

    `score` maps uint8 crops (n, size, size, 3) to P(Parasitized). A photo's pixels are released by
    the caller: keep what you need of each Photo and drop it.
    """
    cores = available_cores()

    def work(item: Item) -> Photo:
        return prepare(item, size, cell_diameter, slide_pattern, stain_mode, stain_range)

    with ThreadPoolExecutor(max_workers=cores) as pool, \
            tqdm(desc="screen", unit=" photos", disable=None if progress is None else not progress) as bar:
        for photo in _ahead(pool, work, items(paths), depth=cores):
            if photo.inputs is not None and len(photo.inputs):
                photo.p = np.asarray(score(photo.inputs), float)
                photo.labels = [call(float(p), threshold) for p in photo.p]
            bar.update(1)
            yield photo
