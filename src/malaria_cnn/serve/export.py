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

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from malaria_cnn.data import archive

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
CROP_FOLDER = {"parasitized": "Parasitized", "uninfected": "Uninfected"}  # the pipeline's default class_dirs
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
PNG = b"\x89PNG\r\n\x1a\n"


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
    kind: str = ""  # what segmentation found it to be: red cell or uncertain object ('' if not stored)


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


class Records:
    """An export's photos and cells held in memory (a caller's few; the server's come from its store, a
    few photos at a time: serve/export_store.py). A cell's crop is its crop_png, else `read_crop(cell id)`."""

    def __init__(self, photos: list[ExportPhoto], cells: list[ExportCell],
                 read_crop: Callable[[int], bytes] | None = None):
        self.photos, self._read_crop = photos, read_crop
        self._by_photo: dict[int, list[ExportCell]] = {}
        for c in sorted(cells, key=lambda c: c.n):
            self._by_photo.setdefault(c.photo_id, []).append(c)

    def cells(self, photo_ids: list[int], models: bool = False) -> Iterator[list[ExportCell]]:
        """Each of these photos' cells (by n), the photos in the order given (with their models and kinds:
        `models` is for sources that read them only when asked)."""
        for i in photo_ids:
            yield self._by_photo.get(i, [])

    def crop(self, cell: ExportCell) -> bytes | None:
        return cell.crop_png if cell.crop_png is not None else self._read_crop(cell.id)


def check_records(photos: list[ExportPhoto], cells: list[ExportCell]) -> None:
    """Ids unique and every cell on an exported photo of its slide (check_cell checks the rest as written)."""
    by_id = {p.id: p for p in photos}
    _require(len(by_id) == len(photos), "two photos share an id")
    _require(len({(p.slide_id, p.slide) for p in photos}) == len({p.slide_id for p in photos}), "a slide has two names")
    _require(len({c.id for c in cells}) == len(cells), "two cells share an id")
    _require(len({(c.photo_id, c.n) for c in cells}) == len(cells), "two cells of a photo share their n")
    for c in cells:
        photo = by_id.get(c.photo_id)
        _require(photo is not None, f"cell {c.id}: its photo {c.photo_id} is not exported")
        _require((photo.slide_id, photo.slide) == (c.slide_id, c.slide), f"cell {c.id}: not on its photo's slide")
        check_cell(c, photo)


def check_cell(c: ExportCell, photo: ExportPhoto) -> None:
    """ValueError when a cell's answer, model label, crop or box cannot be exported."""
    _require(c.answer is None or c.answer in ANSWERS, f"cell {c.id}: unknown answer {c.answer!r}")
    _require(c.model_label in MODEL_LABELS, f"cell {c.id}: unknown model label {c.model_label!r}")
    _require(c.crop_png is None or c.crop_png.startswith(PNG), f"cell {c.id}: its crop is not a PNG")
    w, h = _bbox(c.box, photo)[2:]
    _require(w > 0 and h > 0, f"cell {c.id}: box {c.box} is off its photo")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _bbox(box: tuple[int, int, int, int], photo: ExportPhoto) -> list[int]:
    """[x, y, w, h] clipped to the photo (a box a pixel past the edge is not worth failing an export for)."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = min(max(x, 0), photo.width), min(max(y, 0), photo.height)
    x1, y1 = min(max(x + w, 0), photo.width), min(max(y + h, 0), photo.height)
    return [x0, y0, x1 - x0, y1 - y0]


def image(p: ExportPhoto) -> dict:
    """A photo as a COCO image."""
    return {"id": p.id, "file_name": p.name, "width": p.width, "height": p.height, "slide": p.slide,
            "slide_id": p.slide_id, "slide_key": slide_key(p.slide_id, p.slide)}


def annotation(cell: ExportCell, outcome: str, photo: ExportPhoto) -> dict:
    """A kept cell (`outcome`: its category) as a COCO annotation, with the review."""
    bbox = _bbox(cell.box, photo)
    crop = crop_member(cell, CROP_FOLDER[outcome]) if outcome in CROP_FOLDER else None
    return {"id": cell.id, "image_id": cell.photo_id, "category_id": _CATEGORY_ID[outcome], "bbox": bbox,
            "area": bbox[2] * bbox[3], "iscrowd": 0,
            "attributes": {"reviewed": cell.answer is not None, "answer": cell.answer, "model_p": cell.p,
                           "model_label": cell.model_label, "model_sha256": cell.model_sha256, "cell": cell.n,
                           "slide": cell.slide, "crop": crop, "kind": cell.kind}}


def readme(counts: dict, model_sha256: str, exported_at: str) -> str:
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
