"""`malaria-cnn screen` end to end: screen the photos, stream the rows of cells.csv and images.csv as each
photo is done, write every other output atomically at the end, score against labelled boxes when given,
print the summary lines, and return the exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data import stain
from malaria_cnn.evaluation import patients
from malaria_cnn.evaluation import reviewed
from malaria_cnn.screening import missed, report, truth
from malaria_cnn.screening.regions import UNCERTAIN
from malaria_cnn.screening.report import PARASITIZED
from malaria_cnn.screening.reviewed_photos import COLUMNS as REVIEW_COLUMNS
from malaria_cnn.screening.reviewed_photos import ReviewedPhotos
from malaria_cnn.screening.screen import MAX_PIXELS, screen


def run(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], out: str | Path, size: int,
        threshold: float, cell_diameter: float | None = None, slide_pattern: str = "",
        boxes: dict[str, list[truth.Box]] | None = None, stain_mode: str = stain.DEFAULT_MODE,
        stain_range: stain.StainRange | None = None, progress: bool | None = None,
        rule: patients.SlideRule | None = None, max_pixels: int = MAX_PIXELS) -> int:
    """Write cells.csv, images.csv, slides.csv, annotated/*.jpg, parasitized.png (and detection.json, with
    the slide rule review.csv, with `boxes`) under `out`; print the summary (and detection) line; 1 if a photo failed, else 0.
    cells.csv and images.csv grow as `.partial` files photo by photo: a Ctrl-C or a crash leaves every
    finished photo's rows there, and says so on stderr.
    A photo whose stain is outside `stain_range` is referred: listed with its reason, counted in no
    parasitemia and in no detection score. With the slide `rule`, each slide is answered (infected / not
    infected / refer) with its corrected parasitemia. Photos of more than `max_pixels` pixels are refused
    before decoding."""
    out = Path(out)
    image_rows, taken, sheet, uncertain_objects = [], set(), report.Sheet(), 0
    scoring = truth.Scoring(boxes) if boxes is not None else None
    review = ReviewedPhotos(boxes, rule) if boxes is not None and rule is not None else None
    with atomic.interrupted_note(out / "cells.csv", out / "images.csv"), \
            atomic.streamed_csv(out / "cells.csv", report.CELLS) as cells_csv, \
            atomic.streamed_csv(out / "images.csv", report.IMAGES) as images_csv:
        for photo in screen(score, paths, size, threshold, cell_diameter, slide_pattern, stain_mode, stain_range,
                            progress, max_pixels):
            if not photo.error:
                uncertain_objects += photo.kinds.count(UNCERTAIN)
                for row in report.cell_rows(photo):
                    cells_csv.writerow(row)
                stem = report.unique_name(Path(photo.file_name).stem, taken)
                report.write_image(out / "annotated" / f"{stem}.jpg", report.annotated(photo))
                if not photo.referred:
                    sheet.add(photo)
            if scoring is not None:
                state = "failed" if photo.error else "referred" if photo.referred else "read"
                called = np.array([label == PARASITIZED for label in photo.labels], bool)
                scoring.add(photo.name, photo.relative, state, photo.boxes, called, photo.dropped, photo.dropped_why)
            if review is not None:
                review.add(photo)
            image_rows.append(report.image_row(photo, rule))
            images_csv.writerow(image_rows[-1])
            del photo  # its pixels are freed before the next photos are read
    slide_rows = report.slide_rows(image_rows, rule)
    atomic.write_csv(out / "slides.csv", report.SLIDES, slide_rows)
    report.write_image(out / "parasitized.png", sheet.image(threshold))
    print(report.summary(image_rows, threshold, out, rule, slide_rows, uncertain_objects))
    if scoring is not None:
        result = scoring.summary()
        result["photos_referred"] = [r[0] for r in image_rows if r[report.IMAGES.index("referred")]]
        if rule is not None:
            result["pooled_parasitemia"] = truth.pooled(result, report.pooled(
                [r for r in image_rows if r[0] in result["per_photo"]], rule).estimate)
        if review is not None:
            rows, result["review"] = review.result()
            atomic.write_csv(out / "review.csv", REVIEW_COLUMNS, rows)
        atomic.write_json(out / "detection.json", result)
        print(truth.line(result, str(out / "detection.json")))
        print("labelled cells found by type (a found cell's centre in the box):", *missed.lines(result["found_by_type"]),
              sep="\n")
        if review is not None:
            print(f"review, the labels answering: {reviewed.describe(result['review'])} -> {out / 'review.csv'}")
    return 1 if any(r[report.IMAGES.index("error")] for r in image_rows) else 0
