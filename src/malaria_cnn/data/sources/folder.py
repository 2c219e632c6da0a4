"""A folder of crops with one subfolder per class, found anywhere beneath it."""

from __future__ import annotations

import os
from pathlib import Path

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import ClassDirs
from malaria_cnn.data import archive
from malaria_cnn.data.sources import Cell, below_class_dir, is_quietly_skipped, label_of, safe_name


def cells(root: Path, class_dirs: ClassDirs) -> tuple[list[Cell], list[tuple[str, str]], int]:
    """(cells, rejects as (path, reason), number of files skipped quietly), shallowest paths first.

    A nested copy of the data set (Kaggle's cell_images/cell_images/) is found too; ingest
    drops its files as byte-for-byte duplicates.
    """
    if not root.is_dir():
        raise UserError(f"data.path {str(root)!r} is not a folder")
    found, rejects, skipped = [], [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            parts = path.relative_to(root).parts
            if is_quietly_skipped(parts):
                skipped += 1
                continue
            parts = tuple(map(safe_name, parts))  # the file is still read from `path`, under its own name
            rel = "/".join(parts)
            label = label_of(parts, class_dirs)
            if label is None:
                rejects.append((rel, f"not inside a folder named {class_dirs.Parasitized} or {class_dirs.Uninfected}"))
                continue
            member = archive.member_name(label, below_class_dir(parts, class_dirs))
            found.append(Cell(member=member, label=label, read=path.read_bytes, origin=rel))
    found.sort(key=lambda c: (c.origin.count("/"), c.origin))  # shallowest first: a nested copy is the duplicate
    return found, rejects, skipped
