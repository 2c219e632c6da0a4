"""`malaria-cnn screen` end to end: screen the photos, write every output atomically, score against
labelled boxes when given, print the summary lines, and return the exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data import stain
from malaria_cnn.evaluation import patients
from malaria_cnn.screening import report, truth
from malaria_cnn.screening.report import PARASITIZED
from malaria_cnn.screening.screen import screen


def run(score: Callable[[np.ndarray], np.ndarray], paths: list[str | Path], out: str | Path, size: int,
        threshold: float, cell_diameter: float | None = None, slide_pattern: str = "",
        boxes: dict[str, list[truth.Box]] | None = None, stain_mode: str = stain.DEFAULT_MODE,
        stain_range: stain.StainRange | None = None, progress: bool | None = None,
        rule: patients.SlideRule | None = None) -> int:
    """Write cells.csv, images.csv, slides.csv, annotated/*.jpg, parasitized.png (and detection.json
    with `boxes`) under `out`; print the summary (and detection) line; 1 if a photo failed, else 0.
    A photo whose stain is outside `stain_range` is referred: listed with its reason, counted in no
    parasitemia and in no detection score. With the slide `rule`, each slide is answered (infected / not
    infected / refer) with its corrected parasitemia."""
    out = Path(out)
    cell_rows, image_rows, tiles, scores, unlabelled = [], [], [], {}, []
    taken, scored_names = set(), set()
    for photo in screen(score, paths, size, threshold, cell_diameter, slide_pattern, stain_mode, stain_range,
                        progress):
        image_rows.append(report.image_row(photo, rule))
        if photo.error:
            continue
        cell_rows += report.cell_rows(photo)
        stem = report.unique_name(Path(photo.file_name).stem, taken)
        report.write_image(out / "annotated" / f"{stem}.jpg", report.annotated(photo))
        if photo.referred:
            continue
        tiles += report.sheet_tiles(photo)
        if boxes is not None and photo.file_name in boxes:
            called = np.array([label == PARASITIZED for label in photo.labels], bool)
            scores[photo.file_name] = truth.score_photo(photo.boxes, called, boxes[photo.file_name])
            scored_names.add(photo.name)
        elif boxes is not None:
            unlabelled.append(photo.name)
    atomic.write_csv(out / "cells.csv", report.CELLS, cell_rows)
    atomic.write_csv(out / "images.csv", report.IMAGES, image_rows)
    slide_rows = report.slide_rows(image_rows, rule)
    atomic.write_csv(out / "slides.csv", report.SLIDES, slide_rows)
    report.write_image(out / "parasitized.png", report.parasitized_sheet(tiles, threshold))
    print(report.summary(image_rows, threshold, out, rule, slide_rows))
    if boxes is not None:
        result = truth.summarise(scores)
        result["photos_without_boxes"] = unlabelled
        result["photos_referred"] = [r[0] for r in image_rows if r[report.IMAGES.index("referred")]]
        if rule is not None:
            result["pooled_parasitemia"] = truth.pooled(result, report.pooled(
                [r for r in image_rows if r[0] in scored_names], rule).estimate)
        atomic.write_json(out / "detection.json", result)
        print(truth.line(result, str(out / "detection.json")))
    return 1 if any(r[report.IMAGES.index("error")] for r in image_rows) else 0
