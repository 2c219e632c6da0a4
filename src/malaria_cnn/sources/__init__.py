"""Data sources: each turns one kind of data set into cells with a label and a slide."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from malaria_cnn.params import DataParams


@dataclass(frozen=True)
class Cell:
    label: str  # one of labels.CLASS_NAMES
    filename: str  # the file's name, no folders
    slide: str  # the patient's slide: the group a patient-aware split keeps together
    data: bytes  # the encoded image file


def cells(cfg: DataParams) -> tuple[int, Iterator[Cell]]:
    """The number of cells `cfg.source` will give, and an iterator over them."""
    from malaria_cnn.sources import synthetic

    readers = {"synthetic": lambda: synthetic.cells(cfg.synthetic)}
    return readers[cfg.source]()
