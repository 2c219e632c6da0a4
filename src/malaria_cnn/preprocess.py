"""Preprocess: decode every crop in the raw archive to RGB, resize, and store one npz of uint8 arrays."""

from __future__ import annotations

import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from malaria_cnn import archive, atomic, manifest
from malaria_cnn.errors import UserError
from malaria_cnn.images import ImageError, load_cell
from malaria_cnn.labels import CLASS_NAMES

_CHUNK = 64
_zip: zipfile.ZipFile | None = None  # one open archive per worker process


def _open_worker(path: str) -> None:
    global _zip
    _zip = archive.open_zip(path)


def _decode_chunk(job: tuple[list[manifest.Record], int]) -> np.ndarray:
    records, size = job
    out = np.empty((len(records), size, size, 3), np.uint8)
    for i, rec in enumerate(records):
        try:
            data = _zip.read(rec.file)
        except KeyError:
            raise UserError(f"{rec.file} is in the manifest but not in the archive") from None
        if manifest.sha256(data) != rec.sha256:
            raise UserError(f"{rec.file}: sha256 does not match the manifest (the archive changed after ingest)")
        try:
            out[i] = load_cell(data, size)
        except ImageError as exc:
            raise UserError(f"{rec.file}: {exc}") from None
    return out


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_all(zip_path: str | Path, records: list[manifest.Record], size: int, workers: int = 0) -> np.ndarray:
    """Decode and resize every record's image, in parallel, in manifest order."""
    workers = workers or available_cores()
    chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
    out = np.empty((len(records), size, size, 3), np.uint8)
    bar = tqdm(total=len(records), desc="preprocess", unit="cell", disable=None)
    with bar, ProcessPoolExecutor(workers, initializer=_open_worker, initargs=(str(zip_path),)) as pool:
        for i, block in enumerate(pool.map(_decode_chunk, [(c, size) for c in chunks])):
            out[i * _CHUNK : i * _CHUNK + len(block)] = block
            bar.update(len(block))
    return out


def preprocess(zip_path: str | Path, manifest_path: str | Path, out_npz: str | Path, size: int, workers: int) -> str:
    """Write the npz (x, y, slide, filename); return a one-line summary."""
    archive.open_zip(zip_path).close()  # one clear error before starting workers
    records = manifest.read(manifest_path)
    if not records:
        raise UserError(f"{manifest_path} lists no cells")
    x = decode_all(zip_path, records, size, workers)
    y = np.array([CLASS_NAMES.index(r.label) for r in records], np.uint8)
    slide = np.array([r.slide for r in records])
    save_npz(out_npz, x=x, y=y, slide=slide, filename=np.array([r.file for r in records]))
    return f"preprocess: {len(records)} cells at {size}x{size} -> {out_npz}"


def save_npz(dest: str | Path, **arrays: np.ndarray) -> None:
    with atomic.atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_npz(path: str | Path, keys: tuple[str, ...] = ("x", "y", "slide", "filename")) -> dict[str, np.ndarray]:
    """The preprocessed cells: x (n, s, s, 3) uint8, y (n,) label index, slide, filename (archive member)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the preprocess stage first (dvc repro)") from None
