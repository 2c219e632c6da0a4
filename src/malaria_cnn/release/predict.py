"""Score new crops: image files, folders (recursively) and zips, in batches, at the model's threshold.

Every crop goes through `images.read_cell`, the path preprocess takes for training data (decoding,
resizing, stain standardisation as the model's input layer records), with
the same size limits (params `preprocess.min_side`, `preprocess.max_pixels`, `data.max_entry_mb`),
so the model sees new crops exactly as it saw its training crops. A file that cannot be read gets
a row with its reason and the run goes on. Rows are produced one batch at a time, so they can be
written as they come and memory stays flat however many files there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE, call
from malaria_cnn.core.params import DataParams, PreprocessParams
from malaria_cnn.data import archive, images, stain
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.sources import is_quietly_skipped, safe_name
from malaria_cnn.data.sources.zipped import REPEATED, repeated_names, unsafe_reason

COLUMNS = ["file", "p_parasitized", "label", "error"]


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
    skipped without a row.
    """
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file()):
                if not _skipped(path.relative_to(given).parts):
                    yield read_item(safe_name(str(path)), path.read_bytes)
        elif given.suffix.lower() == ".zip" and given.is_file():
            yield from _zip_items(given, limits)
        else:
            yield read_item(safe_name(str(given)), given.read_bytes)


def _zip_items(path: Path, limits: Limits) -> Iterator[Item]:
    try:
        zf = archive.open_zip(path)
    except UserError:
        yield Item(safe_name(str(path)), problem="not a zip archive")
        return
    with zf:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        repeated = repeated_names(infos)
        for info in infos:
            name = f"{safe_name(str(path))}:{info.filename}"
            # before the skip: `../x.png` must not pass as hidden
            problem = unsafe_reason(info, limits.max_entry_mb) or (REPEATED if info.filename in repeated else None)
            if problem:
                yield Item(name, problem=problem)
            elif not _skipped(info.filename.replace("\\", "/").split("/")):
                yield read_item(name, partial(zf.read, info))


def load(item: Item, size: int, limits: Limits = Limits(),
         stain_mode: str = stain.DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray] | str:
    """The crop as the model's input with its optical density (images.read_cell), or the reason it cannot be one."""
    if item.problem:
        return item.problem
    try:
        return images.read_cell(item.data, size, limits.min_side, limits.max_pixels, stain_mode)
    except images.ImageError as exc:
        return str(exc)


def _batches(seq: Iterable[Item], n: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in seq:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def scored(score: Callable[[np.ndarray], np.ndarray], seq: Iterable[Item], size: int, batch_size: int,
           limits: Limits = Limits(), progress: bool | None = None,
           stain_mode: str = stain.DEFAULT_MODE) -> Iterator[tuple[Item, float | None, str, np.ndarray | None]]:
    """(item, P(Parasitized) or None, reason it failed or "", the cell's optical density or None) for each
    item, in order, a batch at a time.

    `score` maps a batch of uint8 crops (n, size, size, 3) to P(Parasitized); decoding runs on a
    thread per core while the model scores. Only one batch of crops is held at once.
    """
    prepare = partial(load, size=size, limits=limits, stain_mode=stain_mode)
    with ThreadPoolExecutor(max_workers=available_cores()) as pool, \
            tqdm(desc="score", unit=" files", disable=None if progress is None else not progress) as bar:
        for batch in _batches(seq, batch_size):
            loaded = list(pool.map(prepare, batch))
            good = [i for i, v in enumerate(loaded) if not isinstance(v, str)]
            prob = score(np.stack([loaded[i][0] for i in good])) if good else np.zeros(0)
            p_of = dict(zip(good, prob))
            for i, item in enumerate(batch):
                yield (item, float(p_of[i]), "", loaded[i][1]) if i in p_of else (item, None, loaded[i], None)
            bar.update(len(batch))


def row(item: Item, p: float | None, error: str, threshold: float) -> tuple:
    """The CSV row (file, P(Parasitized), label, error) of one scored item."""
    return (item.name, round(p, 6), call(p, threshold), "") if p is not None else (item.name, "", "", error)


def rows(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], size: int, threshold: float,
         batch_size: int, progress: bool | None = None, limits: Limits = Limits(),
         stain_mode: str = stain.DEFAULT_MODE) -> Iterator[tuple]:
    """Rows of (file, P(Parasitized), label, error) in input order, as they are scored."""
    for item, p, error, _ in scored(score, items(paths, limits), size, batch_size, limits, progress, stain_mode):
        yield row(item, p, error, threshold)


def predict(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], size: int, threshold: float,
            batch_size: int, progress: bool | None = None, limits: Limits = Limits(),
            stain_mode: str = stain.DEFAULT_MODE) -> list[tuple]:
    """Every row of `rows`, as a list."""
    return list(rows(score, paths, size, threshold, batch_size, progress, limits, stain_mode))


def summary(rows: list[tuple], threshold: float, out: str | Path) -> str:
    """One line: cells read, how many called Parasitized, how many files failed."""
    read = [r for r in rows if not r[3]]
    positive = sum(r[2] == CLASS_NAMES[POSITIVE] for r in read)
    return tally_line(len(read), positive, len(rows) - len(read), threshold, out)


def tally_line(read: int, positive: int, failed: int, threshold: float, out: str | Path) -> str:
    share = f" ({positive / read:.1%})" if read else ""
    fails = f"; {failed:,} file{'s' if failed != 1 else ''} failed (reasons in {out})" if failed else ""
    return f"predict: {read:,} cells read, {positive:,} Parasitized{share} at threshold {threshold:.3f}{fails} -> {out}"
