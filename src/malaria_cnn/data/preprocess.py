"""Preprocess: decode every crop in the raw archive to RGB, resize, standardise its stain, and store one npz
of uint8 arrays.

Crops that cannot be used (undecodable, truncated, too small, too large) are left out with their
reason in a rejects CSV, and so are pixel-for-pixel duplicates that ingest could not see (the
same image encoded twice); nothing is left out silently.
"""

from __future__ import annotations

import multiprocessing
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import archive, cells_npz, manifest
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.duplicates import dedupe
from malaria_cnn.data.images import ImageError, decode_cell

_CHUNK = 64
_zip: zipfile.ZipFile | None = None  # one open archive per worker process


def _open_worker(path: str) -> None:
    global _zip
    _zip = archive.open_zip(path)


def _decode_chunk(job: tuple[list[manifest.ManifestRow], PreprocessParams]
                  ) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Decode one chunk: (images, optical densities, reason or None per image, pixel hash or None per image)."""
    records, cfg = job
    size = cfg.image_size
    out = np.zeros((len(records), size, size, 3), np.uint8)
    od = np.full((len(records), 3), np.nan, np.float32)
    reasons, pixel_hashes = [None] * len(records), [None] * len(records)
    for i, rec in enumerate(records):
        try:
            data = _zip.read(rec.file)
        except KeyError:
            raise UserError(f"{rec.file} is in the manifest but not in the archive: rerun ingest") from None
        if manifest.sha256(data) != rec.sha256:
            raise UserError(f"{rec.file}: sha256 does not match the manifest (the archive changed after ingest)")
        try:
            out[i], pixel_hashes[i], od[i] = decode_cell(data, size, cfg.min_side, cfg.max_pixels, cfg.stain)
        except ImageError as exc:
            reasons[i] = str(exc)
    return out, od, reasons, pixel_hashes


def decode_all(zip_path: str | Path, records: list[manifest.ManifestRow], cfg: PreprocessParams):
    """Decode, resize and standardise every record's image in parallel: (images, optical densities, reasons,
    pixel hashes) in manifest order."""
    workers = cfg.workers or available_cores()
    chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
    x = np.empty((len(records), cfg.image_size, cfg.image_size, 3), np.uint8)
    od = np.empty((len(records), 3), np.float32)
    reasons, hashes = [], []
    # fork starts every worker at the first submission; the stage's process runs no threads of its own
    # then (OpenCV's are off, see images.py, TensorFlow is not imported, and tqdm's monitor thread
    # starts with the first bar, made after the fork) that a forked child could inherit locked
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, context, initializer=_open_worker, initargs=(str(zip_path),)) as pool:
        results = pool.map(_decode_chunk, [(c, cfg) for c in chunks])  # forks here
        with tqdm(total=len(records), desc="preprocess", unit="cell", disable=None) as bar:
            for i, (block, densities, why, digests) in enumerate(results):
                x[i * _CHUNK : i * _CHUNK + len(block)] = block
                od[i * _CHUNK : i * _CHUNK + len(block)] = densities
                reasons += why
                hashes += digests
                bar.update(len(block))
    return x, od, reasons, hashes


def preprocess(zip_path: str | Path, manifest_path: str | Path, out_npz: str | Path, out_rejects: str | Path,
               cfg: PreprocessParams) -> str:
    """Write the npz (x, y, slide, filename, density: each cell's optical density before standardisation,
    source) of the usable cells and the rejects; return a one-line summary."""
    archive.open_zip(zip_path).close()  # one clear error before starting workers
    records = manifest.read(manifest_path)
    if not records:
        raise UserError(f"{manifest_path} lists no cells")
    x, od, reasons, hashes = decode_all(zip_path, records, cfg)

    rejects = [(r.file, why) for r, why in zip(records, reasons) if why]
    good = [i for i, why in enumerate(reasons) if not why]
    keep, duplicates = dedupe([hashes[i] for i in good], [records[i].label for i in good], [records[i].file for i in good])
    kept = np.array([i for i, k in zip(good, keep) if k], dtype=np.int64)
    if len(kept) < len(records):
        x, od = x[kept], od[kept]  # a copy only when something was left out
    kept_records = [records[i] for i in kept]
    counts = Counter(r.label for r in kept_records)
    missing = [c for c in CLASS_NAMES if not counts[c]]
    if missing:
        raise UserError(f"no usable {missing[0]} image left after decoding (see the reasons in {out_rejects})")

    y = np.array([CLASS_NAMES.index(r.label) for r in kept_records], np.uint8)
    slide = np.array([r.slide for r in kept_records])
    cells_npz.save(out_npz, x=x, y=y, slide=slide, filename=np.array([r.file for r in kept_records]), density=od,
                   source=np.array([r.source for r in kept_records]))
    atomic.write_csv(out_rejects, ["file", "reason"], rejects + duplicates)
    how = "stain standardised" if cfg.stain == "od" else "stain as decoded"
    line = f"preprocess: {len(kept_records):,} cells at {cfg.image_size}x{cfg.image_size}, {how} -> {out_npz}"
    line += f"; {len(rejects):,} rejected, {len(duplicates):,} pixel duplicates or label conflicts left out"
    if rejects or duplicates:
        line += f" (reasons in {out_rejects})"
    return line
