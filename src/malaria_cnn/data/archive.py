"""The raw data as one uncompressed zip in NIH's layout: cell_images/<Class>/<file>.png.

One archive instead of thousands of loose files keeps DVC fast; entries are stored (PNG is
already compressed) with fixed timestamps so the same crops always give the same bytes.
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterable
from pathlib import Path

from malaria_cnn.core.atomic import atomic_path
from malaria_cnn.core.errors import UserError

ROOT = "cell_images"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def member_name(label: str, filename: str) -> str:
    return f"{ROOT}/{label}/{filename}"


def write(dest: str | Path, members: Iterable[tuple[str, bytes]]) -> None:
    """Write (name, bytes) pairs, in the order given, as a deterministic stored zip."""
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(check_member_name(name), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def check_member_name(name: str) -> str:
    """Return `name` if it is a plain relative path; raise for absolute paths and `..` (zip-slip)."""
    norm = posixpath.normpath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or norm.startswith("../") or norm == "..":
        raise UserError(f"unsafe archive entry name {name!r}")
    return name


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """Open a zip for reading, with one clear error if it is missing or not a zip."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the ingest stage first (dvc repro)") from None
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a zip archive") from None
