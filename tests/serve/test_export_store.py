"""serve/export_store.py: the server's export read from the workspace a few photos at a time is the zip the
records would make held in memory, its crops in name order, from one snapshot, and its memory does not grow
with the slide."""

from __future__ import annotations

import json
import tracemalloc
import zipfile

import cv2
import numpy as np
import pytest

from malaria_cnn.serve import export, export_store, export_zip, summary
from malaria_cnn.serve.export import ExportCell, ExportPhoto
from malaria_cnn.serve.store import Store

SHA = "ab" * 32
WHEN = "2024-05-06T07:08:09Z"
RULE = summary.Rule(0.5, None)  # no slide rule: the cells flagged are those called parasitized


def crop(seed: int, side: int = 6) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


def fill(store: Store, name: str, photos: int, cells: int = 12) -> int:
    """A slide of `photos` screened photos of `cells` cells, one in four called parasitized; its id."""
    slide = store.add_slide(name)
    for _ in range(photos):
        photo = store.add_photo(slide, "IMG.jpg")
        store.queue_photo(photo, f"{photo}.jpg")
        store.claim(1)
        rows = [{"n": n, "x": 3 * n % 150, "y": 2 * n % 70, "w": 20, "h": 20, "p": 0.9 if n % 4 == 1 else 0.1,
                 "label": "Parasitized" if n % 4 == 1 else "Uninfected", "outline": [[0, 0]], "crop": crop(n),
                 "input": b"", "kind": "uncertain object" if n % 5 == 0 else "red cell"} for n in range(1, cells + 1)]
        store.save_result(photo, "done", "", "", (200, 100), 1.0, rows, SHA)
    return slide


def answer_flagged(store: Store, slide: int, skip_every: int = 0) -> None:
    flagged = [c for c in store.cells(slide_id=slide) if c["label"] == "Parasitized"]
    for k, c in enumerate(flagged):
        skip = skip_every and k % skip_every == skip_every - 1
        store.answer(c["id"], slide, "skip" if skip else ("parasitized", "uninfected", "not_cell")[k % 3])


def in_memory(store: Store, slides: list[dict]) -> tuple[list[ExportPhoto], list[ExportCell], set[int]]:
    """The records as the export read them before it streamed: every photo and cell at once."""
    names = {r["id"]: r["name"] for r in slides}
    photos = [ExportPhoto(p["id"], p["slide_id"], names[p["slide_id"]], p["name"], p["width"], p["height"])
              for sid in names for p in store.photos(sid) if p["state"] == "done"]
    rows = [c for sid in names for c in store.cells(slide_id=sid)]
    cells = [ExportCell(c["id"], c["photo_id"], c["slide_id"], names[c["slide_id"]], c["n"],
                        (c["x"], c["y"], c["w"], c["h"]), c["p"], c["label"], c["answer"], c["label"] == "Parasitized",
                        store.cell_image(c["id"], "crop"), SHA, c["kind"]) for c in rows]
    complete = {sid for sid in names if summary.complete([c.answer for c in cells if c.slide_id == sid and c.flagged])}
    return photos, cells, complete


@pytest.fixture
def workspace(tmp_path):
    """Two slides: "Ward 3" (12 photos) reviewed to the end, "C12 morning/x" (3 photos) with a skip and an undo."""
    store = Store(tmp_path / "ws" / "serve.sqlite3")
    done, partial = fill(store, "Ward 3", 12), fill(store, "C12 morning/x", 3)
    answer_flagged(store, done)
    answer_flagged(store, partial, skip_every=2)
    store.undo(partial)
    yield store
    store.close()


def test_the_export_from_the_store_is_the_zip_of_its_records_in_memory(tmp_path, workspace):
    slides = workspace.slides()
    streamed = export_store.write(workspace, RULE, slides, tmp_path / "streamed.zip", SHA, WHEN)
    photos, cells, complete = in_memory(workspace, slides)
    assert complete == {slides[0]["id"]}
    assert export_zip.write(tmp_path / "memory.zip", photos, cells, SHA, complete, WHEN) == streamed
    assert (tmp_path / "streamed.zip").read_bytes() == (tmp_path / "memory.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "streamed.zip") as zf:
        crops = [n for n in zf.namelist() if n.startswith("cell_images/")]
        assert crops == sorted(crops) and len(crops) == streamed["parasitized"] + streamed["uninfected"]
        assert any("_IMG_10_" in n for n in crops) and any("_cell_10.png" in n for n in crops)  # "10" before "1_"
        assert zf.testzip() is None
        coco = json.loads(zf.read(export.COCO_NAME))
    kinds = {a["attributes"]["cell"]: a["attributes"]["kind"] for a in coco["annotations"]}
    assert kinds and all(k == ("uncertain object" if n % 5 == 0 else "red cell") for n, k in kinds.items())


def test_the_export_reads_one_snapshot_while_answers_go_on(tmp_path, workspace, monkeypatch):
    slide = workspace.slides()[1]
    unanswered = next(c for c in workspace.cells(slide_id=slide["id"]) if c["answer"] is None)
    real_crop, answered = export_store.StoreSource.crop, []

    def crop_then_answer(self, cell):  # an answer arrives while the crops are written
        if not answered:
            answered.append(workspace.answer(unanswered["id"], slide["id"], "parasitized"))
        return real_crop(self, cell)

    monkeypatch.setattr(export_store.StoreSource, "crop", crop_then_answer)
    counts = export_store.write(workspace, RULE, [slide], tmp_path / "c.zip", SHA, WHEN)
    assert answered and workspace.cell(unanswered["id"])["answer"] == "parasitized"
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        names = [n for n in zf.namelist() if n.startswith("cell_images/")]
    assert len(names) == counts["parasitized"] + counts["uninfected"]  # the README's counts and the crops agree
    assert not any(n.endswith(f"_IMG_{unanswered['photo_id']}_cell_{unanswered['n']}.png") for n in names)


def peak_bytes(store: Store, slide: dict, dest) -> int:
    tracemalloc.start()
    try:
        export_store.write(store, RULE, [slide], dest, SHA, WHEN)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_exports_memory_does_not_grow_with_the_slide(tmp_path, monkeypatch):
    """Two complete slides, one 4 times the other (both beyond a read of a few photos): the export of the
    larger peaks at about the same memory (one that holds every record peaks about 3 times as high)."""
    monkeypatch.setattr(export_store, "CHUNK", 4)
    store = Store(tmp_path / "ws" / "serve.sqlite3")
    small, large = fill(store, "small", 8, 100), fill(store, "large", 32, 100)
    for slide in (small, large):
        answer_flagged(store, slide)
    peaks = [peak_bytes(store, store.slide(s), tmp_path / f"{s}.zip") for s in (small, large)]
    store.close()
    assert peaks[1] < 1.25 * peaks[0], peaks
