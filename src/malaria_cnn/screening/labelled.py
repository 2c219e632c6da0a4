"""Labelled smear photos as training data (data.source photos): each boxed red cell becomes a crop cut
exactly as `malaria-cnn screen` cuts a cell. The ingest stage hands ingest `cells` (data/ does not import
screening/, which builds on it).

A photo goes through screen's own path (`screening.screen.prepare`: decode, segment, cut); each labelled box
is paired one to one with a found cell as `screen --truth` pairs them (`matching.match`); the crop is that found
cell's cut, trimmed (`crops.trim`), so preprocess makes of it exactly the input screen gives the model for the
same cell. Boxes of a parasite stage are Parasitized, plain red cells Uninfected; with data.unboxed uninfected,
the found cells no box matches (debris, clumps, cells cut by the photo's edge, white cells kept as uncertain
objects: what screen meets and counts) are Uninfected crops too. Difficult boxes, boxes of
white blood cells (or "not a red cell" in the review page's export), boxes no found cell matches, photos
without boxes and photos that cannot be read are left out, each with its reason. The slide is the photo's
`slide` in a COCO file (the review page's export gives it), else `data.slide_pattern` on the photo's name,
else the photo itself.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

from tqdm import tqdm

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.core.params import DataParams
from malaria_cnn.data import archive
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.inputs import Item, Limits, items
from malaria_cnn.data.slides import slide_of
from malaria_cnn.data.sources import Cell
from malaria_cnn.screening import crops, matching, truth
from malaria_cnn.screening.screen import MAX_PIXELS, prepare, relative_path

UNINFECTED = CLASS_NAMES[1 - POSITIVE]
LABELS = {"parasitized": CLASS_NAMES[POSITIVE], "uninfected": UNINFECTED}
LEFT_OUT = {"difficult": "difficult box: left out, as in scoring",
            truth.NOT_RED: "not a red cell (a white blood cell, or so answered): left out"}
UNMATCHED = "no cell found by screen's segmentation matches this box"
NO_BOXES = "photo without boxes in data.boxes"


@dataclass
class Cut:
    """One photo's cells, cut: (label, box index, PNG bytes) and its boxes' rejects, or why it failed;
    `unboxed`: (found cell index, box (x, y, w, h), PNG bytes) of the found cells no box matches."""

    cells: list[tuple[str, int, bytes]]
    rejects: list[tuple[int, str]]
    error: str = ""
    unboxed: list[tuple[int, tuple, bytes]] = field(default_factory=list)


def cut_labelled(item: Item, relative: str, boxes: list[truth.Box], max_pixels: int = MAX_PIXELS,
                 unboxed: bool = False) -> Cut:
    """The labelled cells of one photo, each the trimmed cut of the found cell its box is paired with; with
    `unboxed`, also the found cells that no box (of any kind, difficult ones included) matches."""
    photo = prepare(item, size=8, relative=relative, max_pixels=max_pixels)  # the inputs are not kept: any size
    if photo.error:
        return Cut([], [], photo.error)
    kept = [i for i, b in enumerate(boxes) if b.kind in LABELS]
    pairs, _ = matching.match(photo.boxes, [boxes[i] for i in kept])
    paired = {kept[b]: f for f, b in pairs}
    cells, rejects = [], []
    for i, box in enumerate(boxes):
        if box.kind in LEFT_OUT:
            rejects.append((i, LEFT_OUT[box.kind]))
        elif i not in paired:
            rejects.append((i, UNMATCHED))
        else:
            cells.append((LABELS[box.kind], i, crops.to_png(crops.trim(photo.cut[paired[i]]))))
    loose = []
    if unboxed:
        anywhere, on_difficult = matching.match(photo.boxes, boxes)
        taken = {f for f, _ in anywhere} | on_difficult | set(paired.values())
        loose = [(f, tuple(photo.boxes[f]), crops.to_png(crops.trim(photo.cut[f])))
                 for f in range(len(photo.cut)) if f not in taken]
    return Cut(cells, rejects, unboxed=loose)


def _box_name(where: str, i: int, box: truth.Box) -> str:
    return f"{where}#box{i + 1} ({box.x:g},{box.y:g},{box.w:g},{box.h:g})"


def _member(label: str, relative: str, what: str) -> str:
    stem = posixpath.splitext(relative)[0].replace("/", "__")
    return archive.member_name(label, f"{stem}_{what}.png")


def _chunks(seq: Iterator, n: int) -> Iterator[list]:
    while chunk := list(islice(seq, n)):
        yield chunk


def cells(cfg: DataParams, progress: bool | None = None) -> tuple[list[Cell], list[tuple[str, str]], int]:
    """(cells, rejects as (where, reason), 0 files skipped quietly), photos in name order, a few per core at
    once. The photos are listed first (each read once, not kept), so that a photo finds its boxes by its
    path under data.path, or by a base name unique among the photos and in data.boxes (truth.photo_keys)."""
    if not Path(cfg.path).exists():
        raise UserError(f"data.path {cfg.path!r} is not a folder or zip of photos")
    labelled = truth.load(cfg.boxes, "data.boxes", not_red=True)
    slides = truth.image_slides(cfg.boxes, "data.boxes")
    limits = Limits(max_entry_mb=cfg.max_entry_mb, max_pixels=MAX_PIXELS)

    def photos() -> Iterator[tuple[Item, str]]:
        return ((item, relative_path(item.name, cfg.path)) for item in items([cfg.path], limits))

    keys = truth.photo_keys(labelled, {item.name: rel for item, rel in photos()})
    found: list[Cell] = []
    rejects: list[tuple[str, str]] = []
    unnamed = 0
    cores = available_cores()
    with ThreadPoolExecutor(max_workers=cores) as pool, \
            tqdm(desc="cut labelled cells", unit=" photos", disable=None if progress is None else not progress) as bar:
        for chunk in _chunks(photos(), 4 * cores):
            todo = []
            for item, rel in chunk:
                if item.name in keys:
                    todo.append((item, rel, labelled[keys[item.name]]))
                else:
                    rejects.append((rel, item.problem or NO_BOXES))
            cut = partial(cut_labelled, unboxed=cfg.unboxed == "uninfected")
            for (item, rel, boxes), result in zip(todo, pool.map(lambda t: cut(*t), todo)):
                bar.update(1)
                if result.error:
                    rejects.append((rel, result.error))
                    continue
                slide = slides.get(keys[item.name]) or slide_of(posixpath.basename(rel), cfg.slide_pattern)
                unnamed += not slide
                for i, reason in result.rejects:
                    rejects.append((_box_name(rel, i, boxes[i]), reason))
                for label, i, png in result.cells:
                    found.append(Cell(_member(label, rel, f"box_{i + 1:04d}"), label, partial(bytes, png),
                                      origin=_box_name(rel, i, boxes[i]), slide=slide or rel))
                for f, (x, y, w, h), png in result.unboxed:
                    found.append(Cell(_member(UNINFECTED, rel, f"found_{f + 1:04d}"), UNINFECTED, partial(bytes, png),
                                      origin=f"{rel}#found{f + 1} ({x:g},{y:g},{w:g},{h:g}), in no box",
                                      slide=slide or rel))
    for name in sorted(set(labelled) - set(keys.values())):
        rejects.append((f"{cfg.boxes}: {name}", "labelled in data.boxes, but no such photo under data.path"))
    if unnamed:
        print(f"warning: {unnamed:,} photo names name no slide (data.slide_pattern), so each of those photos is "
              "its own slide: a patient with several photos may fall in two splits", file=sys.stderr)
    return found, rejects, 0
