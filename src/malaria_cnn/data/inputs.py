"""Inputs of the commands: image files, folders (walked recursively) and zips (read in place), as items
with their bytes or the reason they cannot be used, and the limits every crop or photo is checked against."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams, PreprocessParams
from malaria_cnn.data import archive, images
from malaria_cnn.data.sources import is_quietly_skipped, safe_name
from malaria_cnn.data.sources.zipped import MB, REPEATED, repeated_names, unsafe_reason


@dataclass(frozen=True)
class Limits:
    """What a crop may be: the params preprocess and ingest check, so predict refuses what they refuse."""

    min_side: int = PreprocessParams().min_side
    max_pixels: int = PreprocessParams().max_pixels
    max_entry_mb: int = DataParams().max_entry_mb


@dataclass(frozen=True)
class Item:
    name: str  # what the user sees: a path, or archive.zip:member (as UTF-8 text, see safe_name)
    data: bytes = b""
    problem: str = ""  # why the file cannot be used, when that is known before decoding
    key: object = None  # what the caller needs to find the item again (a labelled cell, say)


def read_item(name: str, read: Callable[[], bytes], key: object = None) -> Item:
    """The file read, or why it cannot be used: a name that tells it (images.refused_by_name), a failed read."""
    if refused := images.refused_by_name(name):
        return Item(name, problem=refused, key=key)
    try:
        return Item(name, read(), key=key)
    except FileNotFoundError:
        return Item(name, problem="file not found", key=key)
    except OSError as exc:
        return Item(name, problem=f"unreadable ({exc.strerror or exc})", key=key)
    except Exception as exc:  # a damaged zip entry (bad CRC, bad compression) and the like
        return Item(name, problem=f"unreadable ({type(exc).__name__}: {exc})", key=key)


def _skipped(parts: Sequence[str]) -> bool:
    """Whether a file in a folder or zip gets no row: hidden and system files, files not named like an
    image (images.PHOTO_SUFFIXES). One named like an image gets a row, with the reason when it cannot be read."""
    if not parts[-1].lower().endswith(images.PHOTO_SUFFIXES):
        return True
    return is_quietly_skipped([*parts[:-1], parts[-1] + ".png"])  # hidden as a crop of that name would be


def items(paths: list[str | Path], limits: Limits = Limits()) -> Iterator[Item]:
    """The crops named by `paths`, read: files as given, folders walked in name order, zips entry
    by entry. Inside folders and zips, hidden and system files and files not named like an image are
    skipped without a row. A file or entry larger than `limits.max_entry_mb` is refused unread.
    """
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file()):
                if not _skipped(path.relative_to(given).parts):
                    yield _file_item(path, limits)
        elif given.suffix.lower() == ".zip" and given.is_file():
            yield from _zip_items(given, limits)
        else:
            yield _file_item(given, limits)


def _file_item(path: Path, limits: Limits) -> Item:
    """A file read, or refused by its size on disk before any byte of it is read (a huge file would be
    in memory whole before its header could tell it is too large)."""
    name = safe_name(str(path))
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_item says why it cannot be read
    limit = limits.max_entry_mb
    if size > limit * MB and not images.refused_by_name(name):
        return Item(name, problem=f"file of {size / MB:,.1f} MB is larger than data.max_entry_mb ({limit})")
    return read_item(name, path.read_bytes)


def _zip_items(path: Path, limits: Limits) -> Iterator[Item]:
    try:
        zf = archive.open_zip(path)
    except UserError:
        yield Item(safe_name(str(path)), problem="not a zip archive")
        return
    with zf:
        for info, problem in _zip_entries(zf, limits):
            name = f"{safe_name(str(path))}:{info.filename}"
            yield Item(name, problem=problem) if problem else read_item(name, partial(zf.read, info))


def _zip_entries(zf, limits: Limits) -> Iterator[tuple]:
    """(info, problem or None) of each entry of an open zip that gets a row, unread."""
    infos = [info for info in zf.infolist() if not info.is_dir()]
    repeated = repeated_names(infos)
    for info in infos:
        # before the skip: `../x.png` must not pass as hidden
        problem = unsafe_reason(info, limits.max_entry_mb) or (REPEATED if info.filename in repeated else None)
        if problem or not _skipped(info.filename.replace("\\", "/").split("/")):
            yield info, problem


def zip_item_count(path: str | Path, limits: Limits = Limits()) -> int:
    """How many items `items([path])` gives for a zip, read from its directory only (1 when it is no zip)."""
    try:
        zf = archive.open_zip(path)
    except UserError:
        return 1
    with zf:
        return sum(1 for _ in _zip_entries(zf, limits))


def member(name: str) -> str:
    """A shown name's path inside its zip (`archive.zip:dir/x.png` -> `dir/x.png`), or the name itself: it
    is split at a ":" only where the part before it is a zip file, so `P4:x.png` stays whole."""
    at = next((i for i, c in enumerate(name)
               if c == ":" and name[:i].lower().endswith(".zip") and Path(name[:i]).is_file()), None)
    return name if at is None else name[at + 1:]
