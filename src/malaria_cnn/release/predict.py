"""Score new crops: image files, folders (recursively) and zips, in batches, at the model's threshold.

Every crop goes through `images.read_cell`, the path preprocess takes for training data (decoding,
resizing, stain standardisation as the model's input layer records), with
the same size limits (params `preprocess.min_side`, `preprocess.max_pixels`, `data.max_entry_mb`),
so the model sees new crops exactly as it saw its training crops. A file that cannot be read gets
a row with its reason and the run goes on. Rows are produced one batch at a time, so they can be
written as they come and memory stays flat however many files there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE, call
from malaria_cnn.data import images, stain
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.data.inputs import Item, Limits, items

COLUMNS = ["file", "p_parasitized", "label", "error"]


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
