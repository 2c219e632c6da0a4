"""Write outputs atomically: a killed stage leaves the old file or nothing, never half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success it replaces `dest` in one step.

    The temporary name keeps the suffix (Keras and NumPy look at it) and starts with a dot,
    and `.gitignore` ignores `.*.tmp-*`, so a leftover from a kill -9 never reaches git or DVC.
    This guards against a killed or failing stage; it does not fsync (a power cut is DVC's
    and the file system's business), which would double the time to write a large npz.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.stem}.tmp-{os.getpid()}{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(dest: str | os.PathLike, text: str) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(dest: str | os.PathLike, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json(dest: str | os.PathLike, data: Any) -> None:
    write_text(dest, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(dest: str | os.PathLike, header: list[str], rows) -> None:
    """Write rows (iterables of values) under `header` as a CSV file."""
    import csv

    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
