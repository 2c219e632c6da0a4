"""Ingest: gather a data source's cells into the raw archive, its manifest and its rejects.

Every file is accounted for: a cell in the manifest, a row with its reason in the rejects CSV,
or one of the non-image files (hidden, system) skipped quietly and counted in the summary.
Byte-for-byte duplicates are kept once; the same file under both classes is left out of both.
With `data.sources`, every source's cells go into the one archive, under a folder named for the
source; each slide is named `<source>/<slide>`, so no two sources share a slide, and the manifest's
`source` column says where each cell came from.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import DataParams, source_name
from malaria_cnn.data import archive, manifest
from malaria_cnn.data.duplicates import dedupe
from malaria_cnn.data.slides import in_source, slide_of
from malaria_cnn.data.sources import Cell, below_class_dir, folder, nih, synthetic, zipped

REJECTS_HEADER = ["file", "reason"]
# reads a photos source: (cells, rejects, files skipped quietly); screening.labelled.cells, which cuts cells as
# `screen` does and so lives in screening/ (which builds on data/): the ingest stage passes it in
PhotosReader = Callable[[DataParams], tuple[list[Cell], list[tuple[str, str]], int]]


def _gather(cfg: DataParams, out_zip: Path, stack: ExitStack, alone: bool,
            photos: PhotosReader | None) -> tuple[list[Cell], list, int, bool]:
    """(cells, rejects, quietly skipped, whether the cells must be packed into out_zip). A zip's or NIH's
    archive becomes out_zip itself when it is the only source, else it is read in place."""
    if cfg.source == "synthetic":
        return synthetic.cells(cfg.synthetic), [], 0, True
    if cfg.source == "folder":
        return (*folder.cells(Path(cfg.path), cfg.class_dirs), True)
    if cfg.source == "photos":
        if photos is None:
            raise ValueError("a photos source needs its reader: ingest(..., photos=screening.labelled.cells)")
        return (*photos(cfg), True)
    if not alone:
        path = cfg.path if cfg.source == "zip" else nih.verified(cfg.nih)
        return (*zipped.cells(stack.enter_context(archive.open_zip(path)), cfg), True)
    if cfg.source == "zip":
        archive.open_zip(cfg.path).close()  # one clear error for a missing file or a non-zip
        with atomic.atomic_path(out_zip) as tmp:
            shutil.copyfile(cfg.path, tmp)
    else:
        nih.fetch(cfg.nih, out_zip)
    zf = stack.enter_context(archive.open_zip(out_zip))
    return (*zipped.cells(zf, cfg), False)


def blocks(cfg: DataParams) -> list[tuple[str, DataParams]]:
    """(name, settings) of each source: data.sources' entries, or the one source data.source names."""
    if not cfg.sources:
        return [(source_name(cfg), cfg)]
    return [(source_name(b), dataclasses.replace(cfg, source=b.source, path=b.path, boxes=b.boxes,
                                                 slide_pattern=b.slide_pattern, sources=()))
            for b in cfg.sources]


def _slide(cell: Cell, pattern: str) -> str | None:
    """The cell's slide: the one its source gives, else the one its file name gives (slide_of), else None."""
    return cell.slide or slide_of(cell.member, pattern)


def _in_folder(cell: Cell, name: str, cfg: DataParams) -> Cell:
    """A cell of one of several sources, under the source's folder in the archive, its slide named for it."""
    below = below_class_dir(cell.member.replace("\\", "/").split("/"), cfg.class_dirs)
    slide = _slide(cell, cfg.slide_pattern) or cell.member
    return dataclasses.replace(cell, member=archive.member_name(cell.label, f"{name}/{below}"),
                               origin=f"{name}: {cell.where}", slide=in_source(name, slide))


def ingest(cfg: DataParams, out_zip: str | Path, out_manifest: str | Path, out_rejects: str | Path,
           photos: PhotosReader | None = None) -> str:
    """Write the archive, manifest and rejects for `cfg`'s source(s); return a one-line summary. `photos`
    reads a photos source (screening.labelled.cells)."""
    out_zip = Path(out_zip)
    sources = blocks(cfg)
    with ExitStack() as stack:
        cells, rejects, skipped, pack, no_slide = [], [], 0, True, 0
        for name, block in sources:
            found, refused, quiet, pack = _gather(block, out_zip, stack, len(sources) == 1, photos)
            no_slide += sum(not _slide(c, block.slide_pattern) for c in found)
            if len(sources) > 1:
                found = [_in_folder(c, name, block) for c in found]
                refused = [(f"{name}: {where}", reason) for where, reason in refused]
            cells += [dataclasses.replace(c, source=name) for c in found]
            rejects += refused
            skipped += quiet
        hashes, readable = [], []
        for cell in tqdm(cells, desc="checksum", unit="cell", disable=None):
            try:
                data = cell.read()
            except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                rejects.append((cell.where, f"unreadable: {exc}"))
                continue
            if not data:
                rejects.append((cell.where, "empty file"))
                continue
            readable.append(cell)
            hashes.append(manifest.sha256(data))
        keep, duplicates = dedupe(hashes, [c.label for c in readable], [c.where for c in readable])
        kept = [(c, h) for c, h, k in zip(readable, hashes, keep) if k]
        _require_every_class([c.label for c, _ in kept], cfg)
        if pack:
            kept = _unique_members(kept)
            archive.write(out_zip, ((c.member, c.read()) for c, _ in kept))

    records = []
    for cell, digest in kept:  # several sources' cells carry their slide (_in_folder)
        slide = _slide(cell, cfg.slide_pattern) or cell.member
        records.append(manifest.ManifestRow(cell.member, cell.label, slide, digest, cell.source))
    manifest.write(out_manifest, records)
    atomic.write_csv(out_rejects, REJECTS_HEADER, sorted(rejects) + duplicates)
    return _summary(cfg, records, len(rejects), len(duplicates), skipped, no_slide, out_zip, out_rejects)


def _require_every_class(labels: list[str], cfg: DataParams) -> None:
    counts = Counter(labels)
    for label in CLASS_NAMES:
        if not counts[label]:
            if cfg.source == "photos":
                raise UserError(f"no {label} cell found in the photos at {cfg.path}: no box of that kind in "
                                f"{cfg.boxes} matches a photo's found cell")
            where = f" in {cfg.path}" if cfg.source in ("folder", "zip") else ""
            folder_name = getattr(cfg.class_dirs, label)
            raise UserError(f"no usable {label} image found{where} (looked for a folder named {folder_name!r}, any case)")


def _unique_members(kept: list[tuple[Cell, str]]) -> list[tuple[Cell, str]]:
    """Give cells that would share a name in the archive (same name, different content) a ~2, ~3... suffix."""
    seen: set[str] = set()
    out = []
    for cell, digest in kept:
        member, n = cell.member, 1
        while member in seen:
            n += 1
            stem, dot, ext = cell.member.rpartition(".")
            member = f"{stem}~{n}{dot}{ext}"
        seen.add(member)
        out.append((dataclasses.replace(cell, member=member), digest))
    return out


def _summary(cfg, records, n_rejected, n_duplicates, skipped, no_slide, out_zip, out_rejects) -> str:
    per_class = Counter(r.label for r in records)
    counts = ", ".join(f"{per_class[c]:,} {c}" for c in reversed(CLASS_NAMES))
    slides = len({r.slide for r in records})
    what = cfg.source
    if cfg.sources:
        per_source = Counter(r.source for r in records)
        what = "sources " + ", ".join(f"{name} ({per_source[name]:,})" for name, _ in blocks(cfg))
    line = f"ingest {what}: {len(records):,} cells ({counts}) from {slides:,} slides -> {out_zip}"
    line += f"; {n_rejected:,} rejected, {n_duplicates:,} duplicates or label conflicts left out"
    if n_rejected or n_duplicates:
        line += f" (reasons in {out_rejects})"
    if skipped:
        line += f"; {skipped:,} non-image files skipped"
    if no_slide:
        print(f"warning: {no_slide:,} file names name no slide, so each of those cells is its own group and "
              "the split cannot keep their patients apart (set data.slide_pattern)", file=sys.stderr)
    return line
