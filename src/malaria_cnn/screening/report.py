"""What `malaria-cnn screen` writes: the rows of its CSVs, each slide's answer (infected / not infected /
refer) with its corrected parasitemia and interval, annotated photos and the sheet of cells called
parasitized; and its one-line summary."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.evaluation import patients
from malaria_cnn.evaluation.gallery import TILE, contact_sheet
from malaria_cnn.evaluation.intervals import PHOTO_DESIGN_EFFECT, effective_size
from malaria_cnn.screening.regions import UNCERTAIN
from malaria_cnn.screening.screen import Photo

CELLS = ["image", "cell", "x", "y", "w", "h", "p_parasitized", "label", "kind"]  # kind: red cell | uncertain object
# parasitized: cells called Parasitized (the outlines' colour); counted / uncertain / flagged: cells at or above the
# slide rule's counting threshold / in its uncertain band / flagged for review (evaluation/patients.py)
IMAGES = ["image", "slide", "cells", "parasitized", "called_share", "counted", "uncertain", "flagged", "referred",
          "error"]
SLIDES = ["slide", "images", "cells", "parasitized", *patients.SLIDE_COLUMNS, "images_referred"]
SHEET_MAX = 200  # cells shown on the parasitized sheet, most probable first
SHEET_COLUMNS = 10
PARASITIZED = CLASS_NAMES[POSITIVE]
_COLOURS = {PARASITIZED: (230, 30, 30), CLASS_NAMES[1 - POSITIVE]: (20, 170, 60)}  # RGB


def _share(k: int, n: int):
    return round(k / n, 6) if n else ""


def cell_rows(photo: Photo) -> list[tuple]:
    return [(photo.name, i + 1, *map(int, box), round(float(p), 6), label, kind)
            for i, (box, p, label, kind) in enumerate(zip(photo.boxes, photo.p, photo.labels, photo.kinds))]


def image_row(photo: Photo, rule: patients.SlideRule | None) -> tuple:
    """IMAGES' row of a photo; a referred photo has its counts but no share. Without a slide rule, `counted`
    is the cells called Parasitized and `uncertain` and `flagged` are empty."""
    if photo.error:
        return (photo.name, photo.slide, "", "", "", "", "", "", "", photo.error)
    k, n = sum(label == PARASITIZED for label in photo.labels), len(photo.labels)
    s = rule.slide(photo.p) if rule else None
    share = "" if photo.referred else _share(k, n)
    return (photo.name, photo.slide, n, k, share, s.counted if s else k, s.uncertain if s else "",
            s.flagged if s else "", photo.referred, "")


def slide_of_photos(photos: list[patients.Slide]) -> patients.Slide:
    """Photos (each a patients.Slide of its own cells) as one slide, the photos as clusters."""
    counted, cells = np.array([s.counted for s in photos], int), np.array([s.cells for s in photos], int)
    return patients.Slide(int(cells.sum()), int(counted.sum()), sum(s.uncertain for s in photos),
                          sum(s.flagged for s in photos), effective_size(counted, cells, PHOTO_DESIGN_EFFECT),
                          len(photos))


def slide_of_rows(rows: list[tuple]) -> patients.Slide:
    """The cells of these photo rows (read, not referred) as one slide."""
    return slide_of_photos([patients.Slide(*(int(r[IMAGES.index(c)] or 0) for c in
                                             ("cells", "counted", "uncertain", "flagged"))) for r in rows])


def pooled(rows: list[tuple], rule: patients.SlideRule, review: patients.Review | None = None) -> patients.Answer:
    """The answer for the cells of these photo rows together (after `review`)."""
    return rule.answer(slide_of_rows(rows), review)


def slide_rows(image_rows: list[tuple], rule: patients.SlideRule | None) -> list[tuple]:
    """Per slide (in order of first appearance): photos counted, their cells and cells called Parasitized,
    the answer from its photos not referred (patients.SLIDE_COLUMNS), and the photos referred. A slide
    whose every photo was referred is referred, with their reason; without a rule, nothing is corrected."""
    error, referred = IMAGES.index("error"), IMAGES.index("referred")
    slides: dict[str, list] = {}
    for row in image_rows:
        if not row[error]:
            slides.setdefault(row[1], []).append(row)
    out = []
    for slide, rows in slides.items():
        counted = [r for r in rows if not r[referred]]
        cells, k = sum(r[2] for r in counted), sum(r[3] for r in counted)
        if not counted:
            extra = (0, "", "", "", "", "", "", patients.REFER, rows[0][referred])
        elif rule is None:
            extra = (k, _share(k, cells), "", "", "", "", "", "", "no slide_rule.json beside the model: not corrected")
        else:
            extra = pooled(counted, rule).row()
        out.append((slide, len(counted), cells, k, *extra, len(rows) - len(counted)))
    return out


def annotated(photo: Photo) -> np.ndarray:
    """The photo (RGB) with every found cell outlined, red if called parasitized, green if not; a referred
    photo says so across its top."""
    img = photo.rgb.copy()
    thickness = max(2, round(max(img.shape[:2]) / 640))
    for outline, label in zip(photo.outlines, photo.labels):
        cv2.polylines(img, [outline], True, _COLOURS[label], thickness)
    if photo.referred:
        scale = max(img.shape[:2]) / 1600
        text = f"REFERRED, not counted: {photo.referred}"
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.rectangle(img, (0, 0), (min(w + 2 * h, img.shape[1]), 2 * h + base), (255, 255, 255), -1)
        cv2.putText(img, text, (h, h + h // 2 + base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 0, 0), thickness,
                    cv2.LINE_AA)
    return img


def write_image(dest: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image atomically, encoded by its suffix (.jpg at quality 90, or .png)."""
    jpeg = Path(dest).suffix.lower() in (".jpg", ".jpeg")
    _, buf = cv2.imencode(Path(dest).suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90] if jpeg else [])
    atomic.write_bytes(dest, buf.tobytes())


def sheet_tiles(photo: Photo) -> list[tuple[float, np.ndarray, str, str]]:
    """(p, tile, caption, caption) for the photo's cells called parasitized."""
    return [(float(p), cv2.resize(cut, (TILE, TILE), interpolation=cv2.INTER_AREA), f"{photo.file_name[:16]} #{i + 1}",
             f"p={p:.3f}") for i, (cut, p, label) in enumerate(zip(photo.cut, photo.p, photo.labels))
            if label == PARASITIZED]


class Sheet:
    """The cells called parasitized so far: how many, and the tiles of the SHEET_MAX most probable."""

    def __init__(self):
        self.count, self.tiles = 0, []

    def add(self, photo: Photo) -> None:
        tiles = sheet_tiles(photo)
        self.count += len(tiles)
        self.tiles = sorted(self.tiles + tiles, key=lambda t: -t[0])[:SHEET_MAX]

    def image(self, threshold: float) -> np.ndarray:
        return parasitized_sheet(self.tiles, threshold, self.count)


def parasitized_sheet(tiles: list[tuple[float, np.ndarray, str, str]], threshold: float,
                      count: int | None = None) -> np.ndarray:
    """The contact sheet of cells called parasitized, most probable first, at most SHEET_MAX; titled with
    `count` cells called (all the tiles by default)."""
    count = len(tiles) if count is None else count
    shown = sorted(tiles, key=lambda t: -t[0])[:SHEET_MAX]
    title = (f"{count:,} cells called Parasitized at threshold {threshold:.3f}"
             + (f" (the {SHEET_MAX} most probable shown)" if count > SHEET_MAX else "")
             + "; caption: photo, cell number in cells.csv, P(Parasitized)")
    flat = [(tile, a, b) for _, tile, a, b in shown]
    rows = [("", flat[i:i + SHEET_COLUMNS]) for i in range(0, len(flat), SHEET_COLUMNS)] or [("", [])]
    return contact_sheet(title, rows, SHEET_COLUMNS)


def unique_name(stem: str, taken: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`... when photos from different folders share a name."""
    name, k = stem, 1
    while name.lower() in taken:
        k += 1
        name = f"{stem}-{k}"
    taken.add(name.lower())
    return name


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' if n != 1 else ''}"


def summary(image_rows: list[tuple], threshold: float, out: str | Path, rule: patients.SlideRule | None = None,
            slides: list[tuple] | None = None, uncertain_objects: int = 0) -> str:
    """One line: photos read, cells found (`uncertain_objects` of them kept though segmentation cannot tell
    what they are) and called Parasitized in the photos counted, with the slide rule their corrected
    parasitemia pooled with its answer, and the slides' answers; photos referred (stain unlike training:
    counted apart), photos that failed."""
    referred_at, error_at = IMAGES.index("referred"), IMAGES.index("error")
    read = [r for r in image_rows if not r[error_at]]
    counted = [r for r in read if not r[referred_at]]
    cells, k = sum(r[2] for r in read), sum(r[3] for r in counted)
    failed = len(image_rows) - len(read)
    counted_cells = sum(r[2] for r in counted)
    share = f" ({k / counted_cells:.2%})" if counted_cells else ""
    where = Path(out) / "images.csv"
    referred = (f"; {_plural(len(read) - len(counted), 'photo')} referred to a microscopist, not counted (stain "
                f"unlike the training data: reasons in {where})" if len(counted) < len(read) else "")
    fails = f"; {_plural(failed, 'photo')} failed (reasons in {where})" if failed else ""
    corrected = ""
    if rule is not None and counted_cells:
        # with the answer for the photos taken together: "refer" says the number is not to be read alone
        a = pooled(counted, rule)
        e = a.estimate
        corrected = f", corrected parasitemia {e.corrected:.2%} ({e.lower:.2%}-{e.upper:.2%}): {a.answer}"
    answers = ""
    if rule is not None and slides:
        answers = "; slides: " + patients.tally(rule, [row[SLIDES.index("answer")] for row in slides])
    found = (f"{cells:,} cells found ({cells - uncertain_objects:,} red cells, {_plural(uncertain_objects, UNCERTAIN)})"
             if uncertain_objects else f"{cells:,} red cells found")
    return (f"screen: {_plural(len(read), 'photo')} read, {found}, {k:,} called Parasitized{share} "
            f"at threshold {threshold:.3f}{corrected}{answers}{referred}{fails} -> {out}")

