"""The corrections zip (serve/export.py says what it holds) written at bounded memory: its records are read a
few photos at a time from a source, in passes (the counts the README and the COCO file open with, the COCO
file, the crops), and each member goes into the zip as it is made. The COCO file is the one JSON document
it always was, written an image and an annotation at a time to a temporary file beside the zip; so its
bytes, and the zip's, are the same as when the export was built in memory.

A source has `photos` (every photo exported, in the COCO file's order), `cells(photo ids, models)` (each
photo's cells, by n, the photos in the order given; their model_sha256 and kind asked for by the COCO file alone)
and `crop(cell)` (its PNG bytes): export.Records holds them in
memory, export_store.StoreSource reads them from the workspace's store.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from malaria_cnn.data import archive
from malaria_cnn.serve.export import (CATEGORIES, COCO_NAME, CROP_FOLDER, PNG, README_NAME, ExportCell, ExportPhoto,
                                      Records, annotation, category, check_cell, check_records, crop_member, image,
                                      readme, slide_key)

_WRITING = threading.Lock()  # atomic_path's temporary name is per process: one write at a time (a double click)


def write_from(dest: Path, source, complete: set[int], model_sha256: str, exported_at: str) -> dict:
    """Write the corrections zip of `source`'s records at `dest` in one step (an earlier file there stays
    whole until then), `complete` the slides whose review is complete; return its counts. Raises ValueError
    for a record that cannot be exported. Writes in this process take turns."""
    counts = _counts(source, complete)
    with _WRITING, archive.writing(dest) as out, tempfile.TemporaryFile(dir=Path(dest).parent) as coco:
        out.add(README_NAME, readme(counts, model_sha256, exported_at).encode("utf-8"))
        size = _write_coco(coco, source, complete, counts, model_sha256, exported_at)
        coco.seek(0)
        out.add_file(COCO_NAME, coco, size)
        for name, cell in _crops(source, complete):
            data = source.crop(cell)
            if data is None or not data.startswith(PNG):
                raise ValueError(f"cell {cell.id}: its crop is not a PNG")
            out.add(name, data)
    return counts


def _classified(source, complete: set[int], models: bool = False) -> Iterator[tuple[ExportCell, str | None]]:
    """Every cell, by photo id then n, checked (export.check_cell), with its category (None: left out)."""
    photos = {p.id: p for p in source.photos}
    for cells in source.cells(sorted(photos), models):
        for c in cells:
            check_cell(c, photos[c.photo_id])
            yield c, category(c, complete)


def _counts(source, complete: set[int]) -> dict:
    """Cells per outcome (accepted: the Uninfected crops no one answered), slides and photos."""
    per, accepted = Counter(), 0
    for c, outcome in _classified(source, complete):
        per[outcome] += 1
        accepted += outcome is not None and c.answer is None
    return {"parasitized": per["parasitized"], "uninfected": per["uninfected"], "not_cell": per["not_cell"],
            "accepted": accepted, "left_out": per[None], "slides": len({p.slide_id for p in source.photos}),
            "photos": len(source.photos)}


def _write_coco(out: BinaryIO, source, complete: set[int], counts: dict, model_sha256: str, exported_at: str) -> int:
    """COCO (the photos as images, the kept cells as annotations with their review) written to `out` as
    json.dumps(indent=1) writes the whole document, a record at a time; its size in bytes."""
    def put(text: str) -> None:
        out.write(text.encode("utf-8"))

    info = {"description": "malaria-cnn serve: red cells reviewed by a person", "version": "1",
            "date_created": exported_at, "exported_at": exported_at, "model_sha256": model_sha256, "counts": counts}
    photos = {p.id: p for p in source.photos}
    put(f'{{\n "info": {_json(info, 1)},\n "licenses": [],\n "images": ')
    _array(put, (image(p) for p in source.photos))
    put(f',\n "categories": {_json(CATEGORIES, 1)},\n "annotations": ')
    _array(put, (annotation(c, outcome, photos[c.photo_id])
                 for c, outcome in _classified(source, complete, True) if outcome))
    put("\n}\n")
    return out.tell()


def _json(value, depth: int) -> str:
    """`value` as json.dumps(indent=1) writes it `depth` levels down (JSON strings hold no raw newline)."""
    return json.dumps(value, indent=1, ensure_ascii=False).replace("\n", "\n" + " " * depth)


def _array(put: Callable[[str], None], items: Iterable[dict]) -> None:
    """A list one level down in the document, written an item at a time."""
    first = True
    for item in items:
        put(("[\n  " if first else ",\n  ") + _json(item, 2))
        first = False
    put("[]" if first else "\n ]")


def _crops(source, complete: set[int]) -> Iterator[tuple[str, ExportCell]]:
    """Every crop's member name and cell, in the order of the names (the zip's order): by folder, then the
    names' slide key, photo id and cell n compared as the names spell them (the key has no "_")."""
    by_slide: dict[str, list[int]] = {}
    for p in source.photos:
        by_slide.setdefault(slide_key(p.slide_id, p.slide), []).append(p.id)
    order = [i for key in sorted(by_slide, key=lambda k: f"{k}_") for i in sorted(by_slide[key], key=lambda i: f"{i}_")]
    for outcome, folder in sorted(CROP_FOLDER.items(), key=lambda kv: kv[1]):
        for cells in source.cells(order):
            for c in sorted(cells, key=lambda c: f"{c.n}."):
                if category(c, complete) == outcome:
                    yield crop_member(c, folder), c


def write(dest: Path, photos: list[ExportPhoto], cells: list[ExportCell], model_sha256: str, complete: set[int],
          exported_at: str, read_crop: Callable[[int], bytes] | None = None) -> dict:
    """Write the corrections zip of these records at `dest` in one step (an earlier file there stays whole
    until then); return its counts. Raises ValueError for inconsistent records ."""
    check_records(photos, cells)
    return write_from(dest, Records(photos, cells, read_crop), complete, model_sha256, exported_at)
