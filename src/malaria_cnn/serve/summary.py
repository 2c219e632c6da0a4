"""A slide as the pages show it: its answer after the person's review (infected / not infected / refer,
with the detection limit the review reached), and beside it what the model alone says, both by the one
answer function every command uses (evaluation/patients.py).

The cells the review shows are the slide rule's review set (evaluation/review.py): every cell flagged,
most likely parasite first. One confirmed parasite makes the slide infected; every flagged cell answered
and none a parasite rules out what the review's detection limit says. The reviewed parasitemia counts the
cells confirmed parasitized and, until a person has answered them, the flagged cells the model counts; its
denominator leaves out what a person said is not a red cell. Its interval treats photos as clusters
(Korn-Graubard), as the evaluation does slides. Photos referred for their stain are counted apart, as
`screen` does. Without a slide rule, the cells called parasitized are the ones flagged.
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.evaluation import patients
from malaria_cnn.evaluation.intervals import korn_graubard
from malaria_cnn.screening import report
from malaria_cnn.screening.regions import UNCERTAIN
from malaria_cnn.screening.report import PARASITIZED

CONFIDENCE = 0.95
ANSWERED = ("parasitized", "uninfected", "not_cell")


def complete(flagged_answers: list[str | None]) -> bool:
    """Whether a slide's review is complete: it has flagged cells and every one has an answer other than skip
    (the one definition: the summary's and the export's)."""
    return bool(flagged_answers) and all(a in ANSWERED for a in flagged_answers)


class Rule:
    """Which cells are counted and which are flagged for review, from the model's threshold and slide rule."""

    def __init__(self, threshold: float, rule: patients.SlideRule | None):
        self.threshold, self.rule = threshold, rule
        self.count_at = rule.count_threshold if rule else threshold

    def counted(self, p: float, label: str) -> bool:
        return p >= self.count_at if self.rule else label == PARASITIZED

    def flagged(self, cells: list[dict]) -> set[int]:
        """The ids of the cells flagged for review among these (whole photos' cells: the review set takes
        the top of each photo's ranking)."""
        if self.rule is None:
            return {c["id"] for c in cells if c["label"] == PARASITIZED}
        by_photo: dict[int, list[dict]] = {}
        for c in cells:
            by_photo.setdefault(c["photo_id"], []).append(c)
        out = set()
        for mine in by_photo.values():
            mask = self.rule.review.flagged(np.array([c["p"] for c in mine], float))
            out.update(c["id"] for c, f in zip(mine, mask) if f)
        return out

    @staticmethod
    def review_order(p: float) -> float:
        """Sorts the flagged cells: most likely parasite first."""
        return -p

    def uncertain(self, p: float) -> bool:
        return self.rule is not None and self.rule.band[0] <= p < self.rule.band[1]


def _fraction(value) -> float | None:
    return None if value is None or value == "" or (isinstance(value, float) and np.isnan(value)) else float(value)


def photo_counts(rule: Rule, cells: list[dict], flagged: set[int] | None = None) -> dict:
    """A photo's figures from its cells (all of one photo): found, called parasitized, counted by the slide
    rule, uncertain, flagged for review, flagged and counted (what the review counts until answered), and
    `objects`: the cells found that segmentation kept as uncertain objects (counted among those found).
    Kept with the photo when it is screened, so a slide's summary reads a row per photo, not every cell."""
    flagged = rule.flagged(cells) if flagged is None else flagged
    counted = [rule.counted(c["p"], c["label"]) for c in cells]
    shown = [c["id"] in flagged for c in cells]
    return {"cells": len(cells), "called": sum(c["label"] == PARASITIZED for c in cells), "counted": sum(counted),
            "uncertain": sum(rule.uncertain(c["p"]) for c in cells), "flagged": sum(shown),
            "flagged_counted": sum(f and k for f, k in zip(shown, counted)),
            "objects": sum(c.get("kind") == UNCERTAIN for c in cells)}


def _image_rows(done: list[dict], tallies: dict[int, dict]) -> list[tuple]:
    """report.IMAGES rows of the photos done, as `screen` writes them."""
    rows = []
    for ph in done:
        t = tallies[ph["id"]]
        rows.append((ph["name"], "", t["cells"], t["called"], "", t["counted"], t["uncertain"], t["flagged"], "", ""))
    return rows


def _answer(a: patients.Answer) -> dict:
    e = a.estimate
    return {"answer": a.answer, "reason": a.reason, "parasitemia": _fraction(e.corrected), "lower": _fraction(e.lower),
            "upper": _fraction(e.upper), "detection_limit": _fraction(a.review_limit)}


def answers(rule: Rule, photos: list[dict], tallies: dict[int, dict],
            review: patients.Review) -> tuple[dict | None, dict | None]:
    """(the model's answer alone, the answer after `review`) for the slide's photos done; None before any."""
    done = [ph for ph in photos if ph["state"] == "done"]
    referred = [ph for ph in photos if ph["state"] == "referred"]
    if not done:
        if referred:
            blank = {"answer": patients.REFER, "reason": referred[0]["referred"], "parasitemia": None, "lower": None,
                     "upper": None, "detection_limit": None}
            return blank, blank
        return None, None
    rows = _image_rows(done, tallies)
    if rule.rule is None:
        n, k = sum(r[2] for r in rows), sum(r[3] for r in rows)
        plain = {"answer": "", "reason": "no slide_rule.json beside the model: not corrected",
                 "parasitemia": k / n if n else None, "lower": None, "upper": None, "detection_limit": None}
        return plain, plain
    slide = report.slide_of_rows(rows)
    return _answer(rule.rule.answer(slide)), _answer(rule.rule.answer(slide, review))


def review(rule: Rule, photos: list[dict], answered: dict[int, list[tuple[dict, bool]]],
           tallies: dict[int, dict]) -> tuple[dict, patients.Review]:
    """What a person has confirmed of the slide's photos done (see the module's docstring): each photo's
    `tallies` (photo_counts: as if no cell were answered), changed by its `answered` cells, each with whether it
    is flagged. So a summary costs a row per photo and one per answer, not one per cell."""
    counts = dict.fromkeys(("flagged", "answered", "skipped", "parasitized", "uninfected", "not_cell"), 0)
    hits, totals, flagged_answers = [], [], []
    for ph in photos:
        if ph["state"] != "done":
            continue
        t, mine = tallies[ph["id"]], answered.get(ph["id"], [])
        counts["flagged"] += t["flagged"]
        shown_answers = [c["answer"] for c, shown in mine if shown]
        flagged_answers += shown_answers + [None] * (t["flagged"] - len(shown_answers))
        n, k = t["cells"], t["flagged_counted"]
        for c, shown in mine:
            answer = c["answer"]
            if answer in ANSWERED:
                counts["answered"] += shown
                counts[answer] += 1
            elif answer == "skip":
                counts["skipped"] += 1
            n -= answer == "not_cell"
            was = shown and rule.counted(c["p"], c["label"])  # counted while unanswered
            k += (answer == "parasitized" or (answer == "skip" and was)) - was
        hits.append(k)
        totals.append(n)
    red = int(sum(totals))
    low, high = korn_graubard(np.array(hits), np.array(totals), CONFIDENCE) if red else (None, None)
    out = {**counts, "red_cells": red, "parasitemia": sum(hits) / red if red else None,
           "lower": _fraction(low), "upper": _fraction(high), "complete": complete(flagged_answers)}
    return out, patients.Review(counts["parasitized"], counts["answered"], counts["not_cell"])


def slide(slide: dict, photos: list[dict], cells: list[dict], rule: Rule) -> dict:
    """The Slide record of the pages' JSON (the workspace's store rows in, see serve/routes/context.py): `answer`
    is the slide's answer after the review so far, `model` the model's alone; `provisional` while photos are
    queued; `objects_total` of the `cells_total` found are uncertain objects (none counted for photos stored
    before kinds were). A photo with stored `counts` (photo_counts) needs only its answered cells among `cells`,
    each with its stored `flagged`; a photo without needs all its cells."""
    by_photo: dict[int, list[dict]] = {}
    for c in cells:
        by_photo.setdefault(c["photo_id"], []).append(c)
    done = [ph for ph in photos if ph["state"] == "done"]
    whole = [ph["id"] for ph in done if not ph.get("counts")]
    flagged = rule.flagged([c for i in whole for c in by_photo.get(i, [])])
    tallies = {ph["id"]: ph["counts"] for ph in done if ph.get("counts")}
    tallies.update({i: photo_counts(rule, by_photo.get(i, []), flagged) for i in whole})
    answered = {i: [(c, c["id"] in flagged if i in whole else bool(c["flagged"])) for c in mine
                    if c["answer"] is not None] for i, mine in by_photo.items()}
    n, k = sum(t["cells"] for t in tallies.values()), sum(t["called"] for t in tallies.values())
    reviewed, given = review(rule, photos, answered, tallies)
    model, after = answers(rule, photos, tallies, given)
    states = [ph["state"] for ph in photos]
    queued = sum(s in ("queued", "screening") for s in states)
    return {"id": slide["id"], "name": slide["name"], "created": slide["created"], "photos_total": len(photos),
            "photos_queued": queued, "photos_done": states.count("done"), "photos_failed": states.count("failed"),
            "photos_referred": states.count("referred"), "cells_total": n,
            "objects_total": sum(t.get("objects", 0) for t in tallies.values()), "called": k,
            "called_share": k / n if n else None, "answer": after, "model": model, "review": reviewed,
            "provisional": queued > 0}
