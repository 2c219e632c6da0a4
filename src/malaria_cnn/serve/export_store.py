"""The export of some of the workspace's slides, read from its store a few photos at a time in one snapshot
(Store.snapshot): what the zip holds (serve/export.py) is decided per photo as it is written
(serve/export_zip.py), so the export's memory does not grow with the slides' cells.

The slides whose review is complete are those the pages call complete (summary.complete, one definition):
the cells flagged for review are the model's rule applied to each photo's cells, as the pages flag them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from malaria_cnn.serve import summary
from malaria_cnn.serve.export import ExportCell, ExportPhoto
from malaria_cnn.serve.export_zip import write_from
from malaria_cnn.serve.store import CURRENT_ANSWER, Store

CHUNK = 50  # photos read at once: 6,000 cells of photos of 120, without their crops


class StoreSource:
    """The export's records of these slides (store rows) read from a snapshot `db`: their photos done, and
    each photo's cells with their current answer, flagged by `rule` (export_zip's source)."""

    def __init__(self, db: sqlite3.Connection, rule: summary.Rule, slides: list[dict]):
        self.db, self.rule = db, rule
        self.names = {r["id"]: r["name"] for r in slides}
        order = {slide_id: i for i, slide_id in enumerate(self.names)}
        marks = ", ".join("?" * len(self.names))
        rows = db.execute(f"SELECT id, slide_id, name, width, height FROM photos WHERE state = 'done' "
                          f"AND slide_id IN ({marks})", list(self.names)).fetchall()
        self.photos = sorted((ExportPhoto(r["id"], r["slide_id"], self.names[r["slide_id"]], r["name"], r["width"],
                                          r["height"]) for r in rows), key=lambda p: (order[p.slide_id], p.id))
        self._slide_of = {p.id: p.slide_id for p in self.photos}

    def cells(self, photo_ids: list[int], models: bool = False) -> Iterator[list[ExportCell]]:
        """Each of these photos' cells (by n), the photos in the order given, CHUNK photos read at once; with
        `models`, each with the sha256 of the model that scored it and its kind (both stored after the crop:
        slower to read, so only the COCO file's pass reads them)."""
        model = "c.model, c.kind" if models else "'' AS model, '' AS kind"
        for start in range(0, len(photo_ids), CHUNK):
            chunk = photo_ids[start:start + CHUNK]
            rows = self.db.execute(f"SELECT c.id, c.photo_id, c.n, c.x, c.y, c.w, c.h, c.p, c.label, {model}, "
                                   f"{CURRENT_ANSWER} AS answer FROM cells c WHERE c.photo_id IN "
                                   f"({', '.join('?' * len(chunk))}) ORDER BY c.photo_id, c.n", chunk).fetchall()
            flagged = self.rule.flagged(rows)
            by_photo: dict[int, list[ExportCell]] = {}
            for r in rows:
                slide_id = self._slide_of[r["photo_id"]]
                by_photo.setdefault(r["photo_id"], []).append(ExportCell(
                    r["id"], r["photo_id"], slide_id, self.names[slide_id], r["n"], (r["x"], r["y"], r["w"], r["h"]),
                    r["p"], r["label"], r["answer"], r["id"] in flagged, None, r["model"], r["kind"]))
            for i in chunk:
                yield by_photo.get(i, [])

    def crop(self, cell: ExportCell) -> bytes | None:
        row = self.db.execute("SELECT crop FROM cells WHERE id = ?", (cell.id,)).fetchone()
        return bytes(row[0]) if row else None

    def complete(self) -> set[int]:
        """The slides whose every flagged cell has an answer other than skip (summary.complete, photo by
        photo: a slide is complete when each of its photos with flagged cells is, and one is)."""
        state: dict[int, bool] = {}
        for cells in self.cells(sorted(self._slide_of)):
            flagged = [c.answer for c in cells if c.flagged]
            if flagged:
                state[cells[0].slide_id] = state.get(cells[0].slide_id, True) and summary.complete(flagged)
        return {slide_id for slide_id, complete in state.items() if complete}


def write(store: Store, rule: summary.Rule, slides: list[dict], dest: Path, model_sha256: str,
          exported_at: str) -> dict:
    """Write the corrections zip of these slides (store rows) at `dest` in one step; its counts."""
    with store.snapshot() as db:
        source = StoreSource(db, rule, slides)
        return write_from(dest, source, source.complete(), model_sha256, exported_at)
