"""Ingest: gather a data source's cells into the raw archive and its manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from malaria_cnn import archive, manifest
from malaria_cnn.params import DataParams
from malaria_cnn.sources import synthetic

SOURCES = {"synthetic": lambda cfg: synthetic.cells(cfg.synthetic)}


def ingest(cfg: DataParams, out_zip: str | Path, out_manifest: str | Path) -> str:
    """Write the archive and manifest for `cfg.source`; return a one-line summary."""
    total, cells = SOURCES[cfg.source](cfg)
    records: list[manifest.Record] = []

    def members():
        for cell in tqdm(cells, total=total, desc=f"ingest {cfg.source}", unit="cell", disable=None):
            name = archive.member_name(cell.label, cell.filename)
            records.append(manifest.Record(name, cell.label, cell.slide, manifest.sha256(cell.data)))
            yield name, cell.data

    archive.write(out_zip, members())
    manifest.write(out_manifest, records)
    per_class = Counter(r.label for r in records)
    slides = len({r.slide for r in records})
    counts = ", ".join(f"{n} {label}" for label, n in sorted(per_class.items()))
    return f"ingest: {len(records)} cells ({counts}) from {slides} slides -> {out_zip}"
