"""Write outputs atomically (a killed stage leaves the old file or nothing, never half a file), and checksum them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
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


@contextmanager
def atomic_dir(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `dest`; on success it takes `dest`'s place.

    The old folder is moved aside before the new one is renamed in and deleted after, so a kill
    leaves either folder in place (or, between the two renames, a `.tmp-` folder to clean).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.old-tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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


@contextmanager
def streamed_csv(dest: str | os.PathLike, header: list[str]) -> Iterator[Any]:
    """A csv writer whose rows reach the disk as they are written, into `DEST.partial`, renamed to
    `dest` on success: a crash or Ctrl-C keeps every row written so far in the .partial file, and
    `dest` is never a file that looks complete but is not."""
    import csv

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)

        class Flushing:
            def writerow(self, row) -> None:
                writer.writerow(row)
                fh.flush()

        yield Flushing()
    os.replace(partial, dest)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in blocks: for downloads, thresholds and model cards."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def interrupted_note(*outs: str | Path) -> Iterator[None]:
    """Say where the rows streamed to `outs` (atomic.streamed_csv) before a Ctrl-C or a crash are, then let
    it go on."""
    try:
        yield
    except BaseException:
        where = " and ".join(f"{out}.partial" for out in outs)
        print(f"stopped: the rows written so far are in {where}", file=sys.stderr)
        raise
