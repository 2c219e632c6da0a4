"""`malaria-cnn evaluate PATH... --out DIR`: a lab's own labelled crops, scored as the evaluate stage scores the test split.

Crops come from folders or zips with one folder per class, read with ingest's rules (files outside
the class folders, unsafe entries, unreadable files: rejects with their reason; exact duplicates kept
once, label conflicts left out) and decoded with preprocess's limits. Scoring streams: one batch of
crops at a time, keeping only each cell's probability, label, slide and checksum; the few crops the
sheets show are read again at the end.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.data import archive, images, inputs, manifest
from malaria_cnn.data.duplicates import dedupe
from malaria_cnn.data.slides import slide_of
from malaria_cnn.data.sources import Cell, folder, zipped
from malaria_cnn.evaluation import evaluate, outputs
from malaria_cnn.release import page, predict
from malaria_cnn.release.options import checked, limits, scorer


def labelled(paths: list[str], data, stack: ExitStack) -> tuple[list[tuple[str, Cell]], list[tuple[str, str]]]:
    """((shown name, cell) for every crop in a class folder, rejects as (name, reason)), in the order given."""
    found, rejects = [], []
    for given in map(Path, paths):
        if given.is_dir():
            cells, bad, _ = folder.cells(given, data.class_dirs)
            found += [(f"{given}/{c.origin}", c) for c in cells]
            rejects += [(f"{given}/{name}", why) for name, why in bad]
        elif given.suffix.lower() == ".zip":
            zf = stack.enter_context(archive.open_zip(given))
            cells, bad, _ = zipped.cells(zf, data)
            found += [(f"{given}:{c.member}", c) for c in cells]
            rejects += [(f"{given}:{name}", why) for name, why in bad]
        else:
            raise UserError(f"{given} is not a folder or a zip: labelled crops come in one folder per class")
    return found, rejects


class Crops:
    """The kept cells' crops, read and decoded only when indexed (x[i], x[[i, j]])."""

    def __init__(self, cells: list[Cell], size: int, lim: inputs.Limits, stain_mode: str):
        self.cells, self.size, self.lim, self.stain_mode = cells, size, lim, stain_mode
        self.shape = (len(cells), size, size, 3)
        self.read: dict[int, np.ndarray] = {}  # the few crops the sheets show, each decoded once

    def __getitem__(self, index):
        if np.ndim(index) == 0:
            i = int(index)
            if i not in self.read:
                data = self.cells[i].read()
                self.read[i] = images.load_cell(data, self.size, self.lim.min_side, self.lim.max_pixels,
                                                self.stain_mode)
            return self.read[i]
        return np.stack([self[i] for i in index]) if len(index) else np.zeros((0, *self.shape[1:]), np.uint8)


def evaluate_command(args: argparse.Namespace) -> int:
    p = checked(args)
    if not Path(args.model).with_name("slide_rule.json").is_file():
        raise UserError(f"no {Path(args.model).with_name('slide_rule.json')}: run `dvc repro` to choose the slide rule")
    m = scorer(args)
    pattern = args.slide_pattern
    lim, size, out = limits(args, p), m.size, Path(args.out)
    with ExitStack() as stack:
        found, rejects = labelled(args.paths, p.data, stack)
        items = (inputs.read_item(name, cell.read, key=i) for i, (name, cell) in enumerate(found))
        # per scored crop: its place in `found`, P(Parasitized), optical density, sha256
        index, probs, densities, digests = [], [], [], []
        for item, prob, error, density in predict.scored(m.score, items, size, args.batch_size, lim,
                                                         stain_mode=m.stain_mode):
            if error:
                rejects.append((item.name, error))
                continue
            index.append(item.key)
            probs.append(prob)
            densities.append(density)
            digests.append(manifest.sha256(item.data))
        names = [found[i][0] for i in index]
        keep, duplicates = dedupe(digests, [found[i][1].label for i in index], names)
        del digests
        index = [i for i, ok in zip(index, keep) if ok]
        atomic.write_csv(out / "rejects.csv", ["file", "reason"], sorted(rejects) + duplicates)
        if not index:
            raise UserError(f"no usable labelled crop in {', '.join(args.paths)} (reasons in {out / 'rejects.csv'})")
        names = [n for n, ok in zip(names, keep) if ok]
        cells = [found[i][1] for i in index]
        y = np.array([CLASS_NAMES.index(c.label) for c in cells])
        slides = np.array([slide_of(c.member, pattern) or c.member for c in cells], dtype=str)
        prob = np.array([q for q, ok in zip(probs, keep) if ok])
        density = np.array([d for d, ok in zip(densities, keep) if ok]).reshape(-1, 3)
        del found, probs, densities, keep
        metrics = outputs.write(outputs.Outputs.under(out), y, prob, slides, m.threshold, m.rule, p.evaluate,
                                Crops(cells, size, lim, m.stain_mode), m.model, density, m.stain_range)
        del cells  # and the archives close: the page below needs none of them
    atomic.write_csv(out / "cells.csv", ["file", "label", "slide", "p_parasitized"],
                     ((n, CLASS_NAMES[label], s, round(float(q), 6)) for n, label, s, q in zip(names, y, slides, prob)))
    page.write(out, metrics, p.evaluate, f"{len(names):,} labelled cells from {', '.join(args.paths)}")
    left = f"; {len(rejects):,} rejected, {len(duplicates):,} duplicates or label conflicts left out" \
           f" (reasons in {out / 'rejects.csv'})" if rejects or duplicates else ""
    print(evaluate.summary(metrics, p.evaluate, split="labelled") + f" -> {out / 'index.html'}{left}")
    return 1 if rejects else 0
