"""From smear photos to parasitemia: photo -> red cells -> one crop per cell -> P(Parasitized) -> rows.

Photos are read as `malaria-cnn predict` reads crops (files, folders, zips, unsafe zip entries
refused) and decoded by the same checked path (truncated files, decompression bombs). Photos are
read, segmented and cut on a thread per core while the model scores the photo before, at most one per
core and the one scored in memory at once; a photo that cannot be used, or that fails in any step (an
internal error), gets its row with the reason and the run goes on.
"""

from __future__ import annotations

import os
import posixpath
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from malaria_cnn.core.labels import call
from malaria_cnn.data import images, stain
from malaria_cnn.data.cpus import available_cores, available_memory
from malaria_cnn.data.inputs import Item, items, member
from malaria_cnn.data.names import safe_name
from malaria_cnn.data.slides import slide_of
from malaria_cnn.screening import crops
from malaria_cnn.screening.segment import segment

# 200 MP phone photos pass: screening one peaks at 2.8 GB RSS (benchmarks/README.md, screen_memory.py)
MAX_PIXELS = 200_000_000  # photos with more pixels are refused before decoding (decompression bombs)
MIN_SIDE = 64  # ... and photos with a shorter side
BYTES_PER_PIXEL = 10  # a photo's own peak while screened, per pixel (benchmarks/README.md: 200 MP, 2.8 GB in all)


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
    relative: str = ""  # its path under the input it was found in, with forward slashes (relative_path)
    kinds: list[str] = field(default_factory=list)  # each cell's kind: red cell or uncertain object (regions.py)
    dropped: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), int))  # regions left out, photo pixels
    dropped_why: list[str] = field(default_factory=list)  # ... and why

    @property
    def file_name(self) -> str:
        """The photo's own file name (a zip entry's name without the archive's)."""
        return posixpath.basename(self.relative or self.name.replace("\\", "/"))


def relative_path(name: str, given: str | Path | None = None) -> str:
    """An input file's path under the input `given` it was found in, with forward slashes: a zip entry's
    name in the archive, a file's path under the folder, a file given itself by its own name. Without
    `given`, `name` splits at a ":" only where the part before it is a zip file."""
    if given is None:
        inside = member(name)
        rel = posixpath.basename(name.replace("\\", "/")) if inside == name else inside
    else:
        given, root = Path(given), safe_name(str(given))
        if given.is_dir():
            rel = os.path.relpath(name, root)
        elif name.startswith(root + ":"):
            rel = name[len(root) + 1:]
        else:
            rel = os.path.basename(name)
    return rel.replace(os.sep, "/").replace("\\", "/")


def internal_error(exc: BaseException) -> str:
    """A photo's error for an unexpected exception: its type and the first line of its message."""
    first = next(iter(str(exc).splitlines()), "").strip()
    return f"internal error: {type(exc).__name__}" + (f": {first}" if first else "")


def _outline(seg, i: int) -> np.ndarray:
    sy, sx = seg.slices[i]
    region = (seg.labels[sy, sx] == i + 1).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(contours, key=cv2.contourArea).astype(np.float32)
    c += (sx.start, sy.start)
    return ((c + 0.5) / seg.scale).astype(np.int32)


def prepare(item: Item, size: int, cell_diameter: float | None = None, slide_pattern: str = "",
            stain_mode: str = stain.DEFAULT_MODE, stain_range: stain.StainRange | None = None,
            relative: str | None = None, max_pixels: int = MAX_PIXELS) -> Photo:
    """Decode, segment and cut one photo, and check its cells' stain against `stain_range`; its `error`
    says why when it cannot be used (any exception on the way too, more than `max_pixels` pixels).
    `relative`: its relative_path."""
    relative = relative_path(item.name) if relative is None else relative
    name = posixpath.basename(relative)
    photo = Photo(item.name, slide_of(name, slide_pattern) or name, relative=relative)
    if item.problem:
        photo.error = item.problem
        return photo
    try:
        rgb = images.decode_rgb(item.data, MIN_SIDE, max_pixels)
        seg = segment(rgb, cell_diameter)
        inputs = np.zeros((len(seg.boxes), size, size, 3), np.uint8)
        density = np.zeros((len(seg.boxes), 3))
        boxes, cut, outlines = seg.boxes.copy(), [], []
        for i in range(len(seg.boxes)):
            cell, _, boxes[i] = crops.cut(rgb, seg, i)
            inputs[i], density[i] = crops.model_input(cell, size, stain_mode)
            cut.append(cell)
            outlines.append(_outline(seg, i))
        referred = stain_range.reason(density) if stain_range is not None else ""
    except images.ImageError as exc:
        photo.error = str(exc)
        return photo
    except Exception as exc:
        photo.error = internal_error(exc)
        return photo
    photo.rgb, photo.boxes, photo.inputs, photo.density = rgb, boxes, inputs, density
    photo.cut, photo.outlines, photo.referred = cut, outlines, referred
    photo.kinds, photo.dropped, photo.dropped_why = seg.kinds, seg.dropped, seg.dropped_why
    return photo


_END = object()


def _ahead(pool: ThreadPoolExecutor, fn: Callable, seq: Iterable, depth: int) -> Iterator[Photo]:
    """fn over seq on the pool, results in input order, at most `depth` in flight at once: those submitted
    and the one last yielded, until the caller asks for the next. Those still in flight when the caller
    stops are cancelled."""
    pending: deque[Future] = deque()
    rest = iter(seq)
    try:
        while True:
            while len(pending) < depth and (x := next(rest, _END)) is not _END:
                pending.append(pool.submit(fn, x))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()


def read_ahead(cores: int, max_pixels: int) -> int:
    """Photos in flight at once: one per core and the one being scored, or fewer when half the memory free
    now would not hold that many photos of `max_pixels` (at least one)."""
    free = available_memory()
    fits = cores + 1 if free is None else int(free // 2 // (BYTES_PER_PIXEL * max_pixels))
    return max(1, min(cores + 1, fits))


def _inputs(paths: list[str | Path]) -> Iterator[tuple[Item, str]]:
    """Each input file with its relative_path."""
    for given in paths:
        for item in items([given]):
            yield item, relative_path(item.name, given)


def _scored(photo: Photo, score: Callable[[np.ndarray], np.ndarray], threshold: float) -> Photo:
    """The photo with its cells scored, or as failed with the internal error."""
    if photo.inputs is None or not len(photo.inputs):
        return photo
    try:
        p = np.asarray(score(photo.inputs), float).reshape(-1)
        if len(p) != len(photo.inputs):
            raise ValueError(f"the model gave {len(p)} scores for {len(photo.inputs)} cells")
    except Exception as exc:
        return Photo(photo.name, photo.slide, internal_error(exc), relative=photo.relative)
    photo.p, photo.labels = p, [call(float(x), threshold) for x in p]
    return photo


def screen(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], size: int, threshold: float,
           cell_diameter: float | None = None, slide_pattern: str = "", stain_mode: str = stain.DEFAULT_MODE,
           stain_range: stain.StainRange | None = None, progress: bool | None = None,
           max_pixels: int = MAX_PIXELS) -> Iterator[Photo]:
    """Every input file as a Photo, in input order, its cells scored at `threshold` (a referred photo's too:
    the caller counts it apart).

    `score` maps uint8 crops (n, size, size, 3) to P(Parasitized). At most read_ahead photos, the one
    yielded included, are in memory at once, if the caller drops each Photo before asking for the next
    (keep only what you need of it).
    """
    cores = available_cores()

    def work(entry: tuple[Item, str]) -> Photo:
        item, relative = entry
        return prepare(item, size, cell_diameter, slide_pattern, stain_mode, stain_range, relative, max_pixels)

    with ThreadPoolExecutor(max_workers=cores) as pool, \
            tqdm(desc="screen", unit=" photos", disable=None if progress is None else not progress) as bar, \
            closing(_ahead(pool, work, _inputs(paths), depth=read_ahead(cores, max_pixels))) as prepared:
        for photo in prepared:
            photo = _scored(photo, score, threshold)
            bar.update(1)
            yield photo
            del photo  # not held while the next photos are read
