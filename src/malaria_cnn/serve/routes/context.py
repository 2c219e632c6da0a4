"""What every route reads: the workspace's store, the model's rule, the worker and the settings, and the
JSON records the pages use (each field one shape in every response: `photos` and `cells` are always lists,
their counts `photos_total` and `cells_total`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates

from malaria_cnn.serve import summary
from malaria_cnn.serve.display import display_file
from malaria_cnn.serve.store import Store
from malaria_cnn.serve.worker import Worker

PHOTO_FIELDS = ("id", "slide_id", "name", "state", "error", "referred", "width", "height", "display_scale",
                "called", "created", "done")


@dataclass
class Context:
    settings: object  # serve.app.Settings
    store: Store
    rule: summary.Rule
    worker: Worker
    templates: Jinja2Templates
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    upload_lock: threading.Lock = field(default_factory=threading.Lock)

    def slide_or_404(self, slide_id: int) -> dict:
        row = self.store.slide(slide_id)
        if row is None:
            raise HTTPException(404, f"no slide {slide_id}")
        return row

    def cell_or_404(self, cell_id: int) -> dict:
        row = self.store.cell(cell_id)
        if row is None:
            raise HTTPException(404, f"no cell {cell_id}")
        return row

    def display_or_404(self, photo: dict) -> Path:
        """A photo's display copy (a store row), made the first time it is asked for (serve/display.py)."""
        path = display_file(self.settings.workspace, photo, self.worker.max_pixels)
        if path is None:
            raise HTTPException(404, f"photo {photo['id']} has no picture yet (not screened, or failed)")
        return path

    def cell_input(self, cell_id: int) -> bytes:
        """The model's input for a cell as PNG: stored by earlier versions, else made from its crop."""
        from malaria_cnn.serve.explain import input_png

        stored = self.store.cell_image(cell_id, "input")
        if stored:
            return stored
        m = self.settings.scoring
        return input_png(self.store.cell_image(cell_id, "crop"), m.size, m.stain_mode)

    def slide_record(self, row: dict, photos: list[dict] | None = None) -> dict:
        """The slide's summary: its photos' stored figures, and its answered cells."""
        photos = self.store.photos(row["id"]) if photos is None else photos
        return summary.slide(row, photos, self.store.cells(slide_id=row["id"], answered=True), self.rule)

    def cell_record(self, row: dict, flagged: set[int] | None = None) -> dict:
        """A cell's JSON; `flagged`: the ids flagged among its photo's cells (else as stored when screened)."""
        shown = row["id"] in flagged if flagged is not None else bool(row["flagged"])
        out = {"id": row["id"], "photo_id": row["photo_id"], "n": row["n"],
               "box": [row["x"], row["y"], row["w"], row["h"]], "p": row["p"], "label": row["label"],
               "flagged": row["photo_state"] == "done" and shown, "answer": row["answer"], "kind": row["kind"]}
        if "outline" in row:
            out["outline"] = row["outline"]
        return out


def photo_record(row: dict) -> dict:
    return {**{k: row[k] for k in PHOTO_FIELDS}, "cells_total": row["cells"]}


def context(request: Request) -> Context:
    """The app's Context (a FastAPI dependency)."""
    return request.app.state.context
