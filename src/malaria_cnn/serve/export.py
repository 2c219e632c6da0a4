"""The reviewers' corrections as training data: one zip the pipeline reads as it is (`data.source=zip`).

The zip holds
  cell_images/Parasitized/<slide key>_IMG_<photo id>_cell_<n>.png   cells a person answered parasitized
  cell_images/Uninfected/<slide key>_IMG_<photo id>_cell_<n>.png    cells a person answered uninfected, and the
      cells not in doubt on a complete slide (every cell in doubt there answered, none skipped), which the person
      accepted as the model called them: Uninfected (reviewed false)
  boxes.coco.json   the same cells' boxes in photo pixels (COCO), with the cells answered not a red cell
  README.txt        what the zip holds, its counts, the model and the command that trains on it
Cut cells on black, in NIH's layout and naming, so the zip source (data/sources/zipped.py) reads the labels
from the folders and data/slides.py the slide from each name: the slide key `S<slide id>-<name>` (only
letters, digits and -) is one group per workspace slide, never merged with another by NIH's C<number> rule,
so a patient-aware split keeps each slide's cells together. README.txt and the JSON are not images: the
source skips them quietly.

Left out (counted as left_out): cells answered skip (in doubt, and the person would not say), and cells no
one answered unless they are the accepted rest of a complete slide. They are in neither the crops nor the
COCO annotations, so every annotation is a label a person gave or accepted; a photo's annotations are
therefore not every cell on it.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from malaria_cnn.data import archive
from malaria_cnn.serve import summary

ANSWERS = ("parasitized", "uninfected", "not_cell", "skip")
MODEL_LABELS = ("Parasitized", "Uninfected")
COCO_NAME = "boxes.coco.json"
README_NAME = "README.txt"
CATEGORIES = [
    {"id": 1, "name": "parasitized", "supercategory": "red cell"},
    {"id": 2, "name": "uninfected", "supercategory": "red cell"},
    {"id": 3, "name": "not a red cell", "supercategory": "other"},
]
_CATEGORY_ID = {"parasitized": 1, "uninfected": 2, "not_cell": 3}
_CROP_FOLDER = {"parasitized": "Parasitized", "uninfected": "Uninfected"}  # the pipeline's default class_dirs
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
_PNG = b"\x89PNG\r\n\x1a\n"
_WRITING = threading.Lock()  # atomic_path's temporary name is per process: one write at a time (a double click)


@dataclass(frozen=True)
class ExportPhoto:
    id: int
    slide_id: int
    slide: str  # the slide's name in the workspace
    name: str  # as uploaded, for display only
    width: int
    height: int


@dataclass(frozen=True)
class ExportCell:
    id: int
    photo_id: int
    slide_id: int
    slide: str
    n: int  # 1-based in its photo
    box: tuple[int, int, int, int]  # x, y, w, h in photo px
    p: float  # the model's P(Parasitized)
    model_label: str  # "Parasitized" | "Uninfected"
    answer: str | None  # None or one of ANSWERS
    flagged: bool
    crop_png: bytes | None  # the cut cell on black; None: read when written (write's read_crop)
    model_sha256: str = ""  # the model that scored the cell


def slide_key(slide_id: int, name: str) -> str:
    """`S<id>-<name>` with every character outside [A-Za-z0-9-] made "-": safe in a file name, distinct per
    slide (the id), and free of `_` and of a leading C<number>, so slide_of gives back exactly this key."""
    return f"S{slide_id}-{_UNSAFE.sub('-', name)}"


def crop_member(cell: ExportCell, label: str) -> str:
    """The crop's path in the zip: cell_images/<label>/<slide key>_IMG_<photo id>_cell_<n>.png."""
    return archive.member_name(label, f"{slide_key(cell.slide_id, cell.slide)}_IMG_{cell.photo_id}_cell_{cell.n}.png")


def category(cell: ExportCell, complete: set[int]) -> str | None:
    """What the export makes of a cell: "parasitized", "uninfected", "not_cell", or None (left out)."""
    if cell.answer in _CATEGORY_ID:
        return cell.answer
    accepted = cell.answer is None and not cell.flagged and cell.slide_id in complete
    return "uninfected" if accepted and cell.model_label == "Uninfected" else None


def select(store, rule: summary.Rule, slides: list[dict]) -> tuple[list[ExportPhoto], list[ExportCell], set[int]]:
    """The export's photos and cells (crops left to read when written) of these slides (store rows), and the
    slides whose review is complete (summary.complete, as the pages say)."""
    names = {r["id"]: r["name"] for r in slides}
    photos = [ExportPhoto(p["id"], p["slide_id"], names[p["slide_id"]], p["name"], p["width"], p["height"])
              for sid in names for p in store.photos(sid) if p["state"] == "done"]
    rows = store.export_cells(list(names))
    flagged = rule.flagged(rows)
    cells = [ExportCell(c["id"], c["photo_id"], c["slide_id"], names[c["slide_id"]], c["n"],
                        (c["x"], c["y"], c["w"], c["h"]), c["p"], c["label"], c["answer"], c["id"] in flagged, None,
                        c["model"]) for c in rows]
    by_slide: dict[int, list[str | None]] = {sid: [] for sid in names}
    for c in cells:
        if c.flagged:
            by_slide[c.slide_id].append(c.answer)
    return photos, cells, {sid for sid, answers in by_slide.items() if summary.complete(answers)}


def write(dest: Path, photos: list[ExportPhoto], cells: list[ExportCell], model_sha256: str, complete: set[int],
          exported_at: str, read_crop: Callable[[int], bytes] | None = None) -> dict:
    """Write the corrections zip at `dest` in one step (an earlier file there stays whole until then); return
    its counts. A cell's crop is its crop_png, or `read_crop(cell id)` read as it is written, so one crop at a
    time is in memory. Raises ValueError for inconsistent records. Writes in this process take turns."""
    by_id = _check(photos, cells)
    kept = [(c, k) for c in cells if (k := category(c, complete))]
    counts = _counts(photos, cells, kept)
    coco = _coco(photos, kept, by_id, counts, model_sha256, exported_at)
    crops = sorted(((crop_member(c, _CROP_FOLDER[k]), c) for c, k in kept if k in _CROP_FOLDER), key=lambda x: x[0])
    members = [(README_NAME, _readme(counts, model_sha256, exported_at).encode("utf-8")),
               (COCO_NAME, (json.dumps(coco, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))]
    with _WRITING:
        archive.write(dest, chain(members, ((name, _crop(c, read_crop)) for name, c in crops)))
    return counts


def _crop(cell: ExportCell, read_crop) -> bytes:
    data = cell.crop_png if cell.crop_png is not None else read_crop(cell.id)
    _require(data is not None and data.startswith(_PNG), f"cell {cell.id}: its crop is not a PNG")
    return data


def _check(photos: list[ExportPhoto], cells: list[ExportCell]) -> dict[int, ExportPhoto]:
    """The photos by id, after checking that ids are unique and every cell fits its photo."""
    by_id = {p.id: p for p in photos}
    _require(len(by_id) == len(photos), "two photos share an id")
    _require(len({(p.slide_id, p.slide) for p in photos}) == len({p.slide_id for p in photos}), "a slide has two names")
    _require(len({c.id for c in cells}) == len(cells), "two cells share an id")
    _require(len({(c.photo_id, c.n) for c in cells}) == len(cells), "two cells of a photo share their n")
    for c in cells:
        photo = by_id.get(c.photo_id)
        _require(photo is not None, f"cell {c.id}: its photo {c.photo_id} is not exported")
        _require((photo.slide_id, photo.slide) == (c.slide_id, c.slide), f"cell {c.id}: not on its photo's slide")
        _require(c.answer is None or c.answer in ANSWERS, f"cell {c.id}: unknown answer {c.answer!r}")
        _require(c.model_label in MODEL_LABELS, f"cell {c.id}: unknown model label {c.model_label!r}")
        _require(c.crop_png is None or c.crop_png.startswith(_PNG), f"cell {c.id}: its crop is not a PNG")
        w, h = _bbox(c.box, photo)[2:]
        _require(w > 0 and h > 0, f"cell {c.id}: box {c.box} is off its photo")
    return by_id


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _bbox(box: tuple[int, int, int, int], photo: ExportPhoto) -> list[int]:
    """[x, y, w, h] clipped to the photo (a box a pixel past the edge is not worth failing an export for)."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = min(max(x, 0), photo.width), min(max(y, 0), photo.height)
    x1, y1 = min(max(x + w, 0), photo.width), min(max(y + h, 0), photo.height)
    return [x0, y0, x1 - x0, y1 - y0]


def _counts(photos: list[ExportPhoto], cells: list[ExportCell], kept: list[tuple[ExportCell, str]]) -> dict:
    """Cells per outcome (accepted: the Uninfected crops no one answered), slides and photos."""
    per = Counter(k for _, k in kept)
    return {"parasitized": per["parasitized"], "uninfected": per["uninfected"], "not_cell": per["not_cell"],
            "accepted": sum(c.answer is None for c, _ in kept), "left_out": len(cells) - len(kept),
            "slides": len({p.slide_id for p in photos}), "photos": len(photos)}


def _coco(photos: list[ExportPhoto], kept: list[tuple[ExportCell, str]], by_id: dict[int, ExportPhoto],
          counts: dict, model_sha256: str, exported_at: str) -> dict:
    """COCO: the photos as images, the kept cells as annotations (boxes in photo px) with their review."""
    info = {"description": "malaria-cnn serve: red cells reviewed by a person", "version": "1",
            "date_created": exported_at, "exported_at": exported_at, "model_sha256": model_sha256, "counts": counts}
    images = [{"id": p.id, "file_name": p.name, "width": p.width, "height": p.height, "slide": p.slide,
               "slide_id": p.slide_id, "slide_key": slide_key(p.slide_id, p.slide)} for p in photos]
    return {"info": info, "licenses": [], "images": images, "categories": CATEGORIES,
            "annotations": [_annotation(c, k, by_id[c.photo_id]) for c, k in kept]}


def _annotation(cell: ExportCell, kind: str, photo: ExportPhoto) -> dict:
    bbox = _bbox(cell.box, photo)
    crop = crop_member(cell, _CROP_FOLDER[kind]) if kind in _CROP_FOLDER else None
    return {"id": cell.id, "image_id": cell.photo_id, "category_id": _CATEGORY_ID[kind], "bbox": bbox,
            "area": bbox[2] * bbox[3], "iscrowd": 0,
            "attributes": {"reviewed": cell.answer is not None, "answer": cell.answer, "model_p": cell.p,
                           "model_label": cell.model_label, "model_sha256": cell.model_sha256, "cell": cell.n,
                           "slide": cell.slide, "crop": crop}}


def _readme(counts: dict, model_sha256: str, exported_at: str) -> str:
    c, answered = counts, counts["uninfected"] - counts["accepted"]
    return f"""\
Corrections from malaria-cnn serve, exported {exported_at}
Cells called by the model with SHA-256 {model_sha256}, reviewed by a person.
{c['slides']} slides, {c['photos']} photos.

cell_images/Parasitized/  {c['parasitized']} crops: cells a person answered parasitized
cell_images/Uninfected/   {c['uninfected']} crops: {answered} answered uninfected, {c['accepted']} accepted unreviewed
                          (cells not in doubt, on a slide whose every cell in doubt was answered)
{COCO_NAME}           the same cells and {c['not_cell']} answered not a red cell: boxes [x, y, w, h] in photo pixels,
                          with the person's answer and the model's call (COCO; images are the photos by name)
Left out: {c['left_out']} cells, skipped or not reviewed.

Each crop is one red cell cut out on black, named <slide>_IMG_<photo id>_cell_<n>.png, where <slide> is
S<slide id>-<slide name>: the pipeline keeps each slide's cells in one split.

Train on these crops in the malaria-cnn project (its folder, with the default data.class_dirs and
data.slide_pattern):
  dvc exp run -S data.source=zip -S data.path=/path/to/this.zip
with /path/to/this.zip where you saved this file. data.path names one zip, so these crops are then the
whole data set: to add them to other crops, put both in one zip (or one folder, data.source=folder)
with the same Parasitized and Uninfected folders. The split needs at least 3 slides and both classes.
"""
