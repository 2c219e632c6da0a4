"""Data sources: one module per kind of data set, each giving its cells with a label and a slide.

A source module has `cells(cfg) -> (count, iterator of Cell)`; ingest.py maps `data.source` to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    label: str  # one of labels.CLASS_NAMES
    filename: str  # the file's name, no folders
    slide: str  # the patient's slide: the group a patient-aware split keeps together
    data: bytes  # the encoded image file
