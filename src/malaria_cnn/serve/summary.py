"""A slide as the pages show it: what the model says (the slide rule's answer and corrected parasitemia,
as `screen` gives them) and, beside it, what the person reviewing it has confirmed.

The cells in doubt are those the model counts or calls parasitized and those in the rule's uncertain band:
the review shows them, largest doubt first. The reviewed parasitemia counts the cells confirmed
parasitized and, until a person has answered them, the cells in doubt the model counts; its denominator
leaves out what a person said is not a red cell. Its interval treats photos as clusters (Korn-Graubard),
as the evaluation does slides. Photos referred for their stain are counted apart, as `screen` does.
"""

from __future__ import annotations

import numpy as np

from malaria_cnn.evaluation import patients
from malaria_cnn.evaluation.intervals import korn_graubard
from malaria_cnn.screening import report
from malaria_cnn.screening.report import PARASITIZED

CONFIDENCE = 0.95


class Rule:
    """Which cells are counted and which are in doubt, from the model's threshold and its slide rule."""

    def __init__(self, threshold: float, rule: patients.SlideRule | None):
        self.threshold, self.rule = threshold, rule
        self.count_at = rule.count_threshold if rule else threshold

    def counted(self, p: float, label: str) -> bool:
        return p >= self.count_at if self.rule else label == PARASITIZED

    def in_doubt(self, p: float, label: str) -> bool:
        band = self.rule is not None and self.rule.band[0] <= p < self.rule.band[1]
        return label == PARASITIZED or self.counted(p, label) or band

    def doubt_order(self, p: float) -> float:
        """Sorts the cells in doubt: nearest the counting threshold first."""
        return abs(p - self.count_at)

    def uncertain(self, p: float) -> bool:
        return self.rule is not None and self.rule.band[0] <= p < self.rule.band[1]


def _fraction(value) -> float | None:
    return None if value is None or value == "" or (isinstance(value, float) and np.isnan(value)) else float(value)


def model_answer(rule: Rule, photos: list[dict], cells_by_photo: dict[int, list[dict]]) -> dict | None:
    """The model's answer for the slide's photos done, as `screen` gives it; None before any is done."""
    done = [ph for ph in photos if ph["state"] == "done"]
    referred = [ph for ph in photos if ph["state"] == "referred"]
    if not done:
        if referred:
            return {"answer": patients.REFER, "reason": referred[0]["referred"], "parasitemia": None, "lower": None,
                    "upper": None}
        return None
    rows = []
    for ph in done:
        cells = cells_by_photo.get(ph["id"], [])
        k = sum(c["label"] == PARASITIZED for c in cells)
        rows.append((ph["name"], "", len(cells), k, "", sum(rule.counted(c["p"], c["label"]) for c in cells),
                     sum(rule.uncertain(c["p"]) for c in cells), "", ""))
    if rule.rule is None:
        n, k = sum(r[2] for r in rows), sum(r[3] for r in rows)
        return {"answer": "", "reason": "no slide_rule.json beside the model: not corrected",
                "parasitemia": k / n if n else None, "lower": None, "upper": None}
    a = report.pooled(rows, rule.rule)
    return {"answer": a.answer, "reason": a.reason, "parasitemia": _fraction(a.estimate.corrected),
            "lower": _fraction(a.estimate.lower), "upper": _fraction(a.estimate.upper)}


def review(rule: Rule, photos: list[dict], cells_by_photo: dict[int, list[dict]]) -> dict:
    """What a person has confirmed of the slide's photos done (see the module's docstring)."""
    counts = dict.fromkeys(("in_doubt", "answered", "skipped", "parasitized", "uninfected", "not_cell"), 0)
    hits, totals = [], []
    for ph in photos:
        if ph["state"] != "done":
            continue
        k = n = 0
        for c in cells_by_photo.get(ph["id"], []):
            doubt, answer = rule.in_doubt(c["p"], c["label"]), c["answer"]
            counts["in_doubt"] += doubt
            if answer in ("parasitized", "uninfected", "not_cell"):
                counts["answered"] += doubt
                counts[answer] += 1
            elif answer == "skip":
                counts["skipped"] += 1
            n += answer != "not_cell"
            k += answer == "parasitized" or (answer in (None, "skip") and doubt and rule.counted(c["p"], c["label"]))
        hits.append(k)
        totals.append(n)
    red = int(sum(totals))
    low, high = korn_graubard(np.array(hits), np.array(totals), CONFIDENCE) if red else (None, None)
    return {**counts, "red_cells": red, "parasitemia": sum(hits) / red if red else None,
            "lower": _fraction(low), "upper": _fraction(high),
            "complete": counts["answered"] == counts["in_doubt"]}


def slide(slide: dict, photos: list[dict], cells: list[dict], rule: Rule) -> dict:
    """The Slide record of the pages' JSON (the workspace's store rows in, see serve/app.py)."""
    by_photo: dict[int, list[dict]] = {}
    for c in cells:
        by_photo.setdefault(c["photo_id"], []).append(c)
    done = [ph for ph in photos if ph["state"] == "done"]
    n = sum(len(by_photo.get(ph["id"], [])) for ph in done)
    k = sum(c["label"] == PARASITIZED for ph in done for c in by_photo.get(ph["id"], []))
    states = [ph["state"] for ph in photos]
    return {"id": slide["id"], "name": slide["name"], "created": slide["created"], "photos": len(photos), "photos_total": len(photos),
            "photos_queued": sum(s in ("queued", "screening") for s in states), "photos_done": states.count("done"),
            "photos_failed": states.count("failed"), "photos_referred": states.count("referred"),
            "cells": n, "called": k, "called_share": k / n if n else None,
            "model": model_answer(rule, photos, by_photo), "review": review(rule, photos, by_photo)}
