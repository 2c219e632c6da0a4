"""`malaria-cnn screen --truth`: the review of each slide's flagged cells simulated, the labelled boxes
answering for the person (evaluation/reviewed.py): a found cell is a parasite when it matches a parasitized
box (matching.match), and a slide's parasites are all its parasitized boxes, found by the segmentation or not.
Only labelled photos that were read and counted take part (a photo referred for its stain is in no figure)."""

from __future__ import annotations

import posixpath

import numpy as np

from malaria_cnn.evaluation import patients, reviewed
from malaria_cnn.screening import report, truth
from malaria_cnn.screening.matching import match
from malaria_cnn.screening.screen import Photo

COLUMNS = ["slide", "images", "cells", "infected", "model_answer", "flagged", "review_limit", *reviewed.COLUMNS]


class ReviewedPhotos:
    """The labelled photos of a run as they come: each one's cells' scores and whether each is a parasite."""

    def __init__(self, labelled: dict[str, list[truth.Box]], rule: patients.SlideRule):
        self.labelled, self.rule = labelled, rule
        self.bases = {posixpath.basename(name) for name in labelled}
        self.photos: dict[str, tuple[str, str, np.ndarray, np.ndarray]] = {}  # name: (path, slide, p, found boxes)

    def add(self, photo: Photo) -> None:
        if photo.error or photo.referred:
            return
        path = photo.relative or photo.name
        if path in self.labelled or posixpath.basename(path) in self.bases:
            self.photos[photo.name] = (path, photo.slide, np.asarray(photo.p, float), np.asarray(photo.boxes))

    def _photo(self, boxes: list[truth.Box], p: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, int]:
        """(each found cell's label, the photo's labelled parasites)."""
        pairs, _ = match(found, boxes)
        y = np.zeros(len(p), int)
        for f, b in pairs:
            y[f] = int(boxes[b].kind == "parasitized")
        return y, sum(b.kind == "parasitized" for b in boxes)

    def result(self) -> tuple[list[tuple], dict]:
        """(COLUMNS' rows, one per slide in order of first appearance; reviewed.summary's pooled figures)."""
        keys = truth.photo_keys(self.labelled, {name: v[0] for name, v in self.photos.items()})
        slides: dict[str, list] = {}
        for name, (_, slide, p, found) in self.photos.items():
            if name in keys:
                y, parasites = self._photo(self.labelled[keys[name]], p, found)
                slides.setdefault(slide, []).append((p, y, parasites))
        rows, answers, review_rows, cells = [], [], [], []
        for slide, photos in slides.items():
            s, model, a, row = review_slide(self.rule, photos)
            rows.append((slide, len(photos), s.cells, int(row[0] > 0), model.answer, s.flagged,
                         "" if np.isnan(a.review_limit) else round(a.review_limit, 6), *row))
            answers.append(a)
            review_rows.append(row)
            cells.append(s.cells)
        infected = np.array([r[3] == 1 for r in rows], bool)
        return rows, reviewed.summary(infected, answers, review_rows, np.array(cells), self.rule.confidence)


def review_slide(rule: patients.SlideRule, photos: list[tuple[np.ndarray, np.ndarray, int]]
                 ) -> tuple[patients.Slide, patients.Answer, patients.Answer, tuple]:
    """A slide of photos, each (its found cells' scores, their labels, its labelled parasites): the slide, the
    model's answer alone, the answer after a labelled review of the cells flagged photo by photo, and its
    reviewed.COLUMNS."""
    s = report.slide_of_photos([rule.slide(p) for p, _, _ in photos])
    a, row = reviewed.slide(rule, s, np.concatenate([y for _, y, _ in photos]), np.concatenate([p for p, _, _ in photos]),
                            sum(k for _, _, k in photos),
                            flagged=np.concatenate([rule.review.flagged(p) for p, _, _ in photos]))
    return s, rule.answer(s), a, row
