"""Score new crops: image files, folders (recursively) and zips, in batches, at the model's threshold.

Every crop goes through `images.load_cell`, the function preprocess uses for training data, so
the model sees new crops exactly as it saw its training crops. A file that cannot be read gets
a row with its reason and the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE, call
from malaria_cnn.core.params import DataParams
from malaria_cnn.data import archive, images
from malaria_cnn.data.preprocess import available_cores
from malaria_cnn.data.sources import is_quietly_skipped
from malaria_cnn.data.sources.zipped import unsafe_reason

COLUMNS = ["file", "p_parasitized", "label", "error"]


@dataclass(frozen=True)
class Item:
    name: str  # what the user sees: a path, or archive.zip:member
    data: bytes = b""
    problem: str = ""  # why the file cannot be used, when that is known before decoding


def _read(name: str, read: Callable[[], bytes]) -> Item:
    try:
        return Item(name, read())
    except FileNotFoundError:
        return Item(name, problem="file not found")
    except OSError as exc:
        return Item(name, problem=f"unreadable ({exc.strerror or exc})")
    except Exception as exc:  # a damaged zip entry (bad CRC, bad compression) and the like
        return Item(name, problem=f"unreadable ({type(exc).__name__}: {exc})")


def items(paths: list[str | Path]) -> Iterator[Item]:
    """The crops named by `paths`, read: files as given, folders walked in name order, zips entry
    by entry. Inside folders and zips, hidden, system and non-image files are skipped without a row.
    """
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file()):
                if not is_quietly_skipped(path.relative_to(given).parts):
                    yield _read(str(path), path.read_bytes)
        elif given.suffix.lower() == ".zip" and given.is_file():
            yield from _zip_items(given)
        else:
            yield _read(str(given), given.read_bytes)


def _zip_items(path: Path) -> Iterator[Item]:
    try:
        zf = archive.open_zip(path)
    except UserError:
        yield Item(str(path), problem="not a zip archive")
        return
    with zf:
        limit = DataParams().max_entry_mb
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = f"{path}:{info.filename}"
            problem = unsafe_reason(info, limit)  # before the skip: `../x.png` must not pass as hidden
            if problem:
                yield Item(name, problem=problem)
            elif not is_quietly_skipped(info.filename.replace("\\", "/").split("/")):
                yield _read(name, partial(zf.read, info))


def _load(item: Item, size: int) -> np.ndarray | str:
    """The crop as the model's input, or the reason it cannot be one."""
    if item.problem:
        return item.problem
    try:
        return images.load_cell(item.data, size)
    except images.ImageError as exc:
        return str(exc)


def _batches(seq: Iterator[Item], n: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in seq:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def predict(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], size: int, threshold: float,
            batch_size: int, progress: bool | None = None) -> list[tuple]:
    """Rows of (file, P(Parasitized), label, error) in input order.

    `score` maps a batch of uint8 crops (n, size, size, 3) to P(Parasitized); decoding runs on a
    thread per core while the model scores.
    """
    rows: list[tuple] = []
    with ThreadPoolExecutor(max_workers=available_cores()) as pool, \
            tqdm(desc="predict", unit=" files", disable=None if progress is None else not progress) as bar:
        for batch in _batches(items(paths), batch_size):
            loaded = list(pool.map(partial(_load, size=size), batch))
            good = [i for i, v in enumerate(loaded) if isinstance(v, np.ndarray)]
            prob = score(np.stack([loaded[i] for i in good])) if good else np.zeros(0)
            p_of = dict(zip(good, prob))
            for i, item in enumerate(batch):
                if i in p_of:
                    p = float(p_of[i])
                    rows.append((item.name, round(p, 6), call(p, threshold), ""))
                else:
                    rows.append((item.name, "", "", loaded[i]))
            bar.update(len(batch))
    return rows


def summary(rows: list[tuple], threshold: float, out: str | Path) -> str:
    """One line: cells read, how many called Parasitized, how many files failed."""
    read = [r for r in rows if not r[3]]
    positive = sum(r[2] == CLASS_NAMES[POSITIVE] for r in read)
    failed = len(rows) - len(read)
    share = f" ({positive / len(read):.1%})" if read else ""
    fails = f"; {failed:,} file{'s' if failed != 1 else ''} failed (reasons in {out})" if failed else ""
    return (f"predict: {len(read):,} cells read, {positive:,} Parasitized{share} at threshold "
            f"{threshold:.3f}{fails} -> {out}")
