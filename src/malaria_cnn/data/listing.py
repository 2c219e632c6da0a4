"""What stands behind `data.path`: a listing of its files (name, size, modification time), cheap to make;
and behind `train.init_from`: the model file's sha256.

DVC tracks `data.path`'s value, not the files behind it. The `listing` stage runs on every `dvc repro`
(always_changed) and writes this listing; ingest depends on it, so a crop added, removed or edited in
the folder (or a zip replaced) reruns ingest, and an unchanged folder leaves it alone. Only names and
stat() results are read, never the files' contents.

The same goes for `train.init_from`, the model the train stages fine-tune from: the stage also writes its
path and its bytes' sha256, which the train stages (and final, for a refit) depend on, so a model replaced
under the same name retrains and an untouched one does not. That one file is read whole (a model: megabytes).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams, TrainParams, source_name
from malaria_cnn.data.names import safe_name


def _walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """(name relative to root, stat) of every file beneath root; names built by slicing, which for
    NIH's 27,558 crops takes a tenth of what os.path.relpath would."""
    cut = len(os.path.join(root, ""))
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    yield entry.path[cut:], entry.stat()


def lines(cfg: DataParams) -> list[str]:
    """One line per file (name, size, mtime in ns), sorted; one constant line for synthetic and nih, whose
    content params fix (nih's archive is checked against data.nih.sha256). A photos source lists its boxes
    file too; with data.sources, each source's lines are prefixed with its name."""
    if not cfg.sources:
        return _lines(cfg.source, cfg.path, cfg.boxes, "data.")
    out = []
    for i, block in enumerate(cfg.sources):
        name = source_name(block)
        out += [f"{name}: {line}" for line in _lines(block.source, block.path, block.boxes, f"data.sources[{i}].")]
    return out


def _lines(source: str, path_text: str, boxes: str, key: str) -> list[str]:
    if source in ("synthetic", "nih"):
        return [f"{source}: no files to watch"]
    path = Path(path_text)
    if source == "zip" or path.is_file():
        if not path.is_file():
            raise UserError(f"{key}path {path_text!r} is not a file")
        found = [(path.name, path.stat())]
    elif path.is_dir():
        found = list(_walk(path_text))
    else:
        raise UserError(f"{key}path {path_text!r} is not a folder")
    if source == "photos":
        if not Path(boxes).is_file():
            raise UserError(f"{key}boxes {boxes!r} is not a file")
        found.append((f"boxes: {boxes}", Path(boxes).stat()))
    return sorted(f"{safe_name(name)}\t{st.st_size}\t{st.st_mtime_ns}" for name, st in found)


def write(cfg: DataParams, dest: str | Path) -> str:
    """Write the listing; return a one-line summary."""
    found = lines(cfg)
    atomic.write_text(dest, "\n".join(found) + "\n")
    files = sum("no files to watch" not in line for line in found)
    return f"listing: {files:,} files behind data.path -> {dest}"


def init_from_line(cfg: TrainParams) -> str:
    """train.init_from and its file's sha256, tab-separated; one constant line when it is empty (training from
    scratch); one clear error if the file is not there."""
    if not cfg.init_from:
        return "train.init_from: empty, training from scratch"
    path = Path(cfg.init_from)
    if not path.is_file():
        raise UserError(f"train.init_from: {cfg.init_from} not found: it should name a trained model.keras, from the "
                        "project's root or absolute")
    return f"{cfg.init_from}\t{atomic.file_sha256(path)}"


def write_init_from(cfg: TrainParams, dest: str | Path) -> str:
    """Write train.init_from's line; return a short summary."""
    line = init_from_line(cfg)
    atomic.write_text(dest, line + "\n")
    if not cfg.init_from:
        return f"train.init_from: empty -> {dest}"
    sha256 = line.split("\t")[-1]
    return f"train.init_from: {cfg.init_from} (sha256 {sha256[:12]}) -> {dest}"
