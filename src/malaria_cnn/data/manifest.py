"""The manifest beside the raw archive: one row per crop (file, label, slide, sha256, source)."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES


@dataclass(frozen=True)
class ManifestRow:
    file: str  # the member's path inside the archive
    label: str  # one of CLASS_NAMES
    slide: str  # the group a patient-aware split keeps together
    sha256: str
    source: str = ""  # the data source's name (params.source_name)


HEADER = [f.name for f in fields(ManifestRow)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(dest: str | Path, records: list[ManifestRow]) -> None:
    atomic.write_csv(dest, HEADER, ((r.file, r.label, r.slide, r.sha256, r.source) for r in records))  # HEADER's order


def read(path: str | Path) -> list[ManifestRow]:
    """Read a manifest, checking its header and labels."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != HEADER:
                raise UserError(f"{path}: expected the columns {','.join(HEADER)}, got {reader.fieldnames} "
                                "(rerun ingest: dvc repro)")
            records = [ManifestRow(**row) for row in reader]
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the ingest stage first (dvc repro)") from None
    for r in records:
        if r.label not in CLASS_NAMES:
            raise UserError(f"{path}: {r.file} has label {r.label!r}, expected one of {', '.join(CLASS_NAMES)}")
    return records
