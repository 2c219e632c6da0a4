"""Labelled photos: reading boxes (IML JSON or COCO) and scoring found cells against them.

A photo takes the boxes of the image named by its path under the input it was found in (a zip's
member path, a file's path under the folder given), else of the image with its base name when that
name is unique both in the labels and in the inputs.
A found cell matches one labelled box, one to one, when its centre lies in the box or their IoU is
at least 0.5 (and, for `detection_iou50`, when their IoU is at least 0.5), as `matching.py` pairs them;
`difficult` boxes are neither hits nor misses: a found cell that matches one is left out. Boxes
of white blood cells (leukocytes) are not red cells: a cell found on one is a false positive.
Parasitized is the positive class: a box is parasitized when its type is a parasite stage.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from malaria_cnn.core.errors import UserError
from malaria_cnn.screening import missed
from malaria_cnn.screening.matching import match

UNINFECTED_TYPES = ("red blood cell", "rbc", "uninfected", "healthy")
PARASITIZED_TYPES = ("ring", "trophozoite", "schizont", "gametocyte", "parasitized", "infected")
DIFFICULT_TYPES = ("difficult",)
NOT_RED_TYPES = ("leukocyte", "white blood cell", "wbc", "not a red cell")  # the last: the review page's export
NOT_RED = "not a red cell"  # the kind of those boxes, kept only where asked for (load's not_red)


@dataclass(frozen=True)
class Box:
    x: float  # top-left corner, in the photo's pixels
    y: float
    w: float
    h: float
    kind: str = "uninfected"  # uninfected | parasitized | difficult | NOT_RED
    type: str = ""  # the label's own type, lower case ("gametocyte", "red blood cell"); "" when not given

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px <= self.x + self.w and self.y <= py <= self.y + self.h


def _kind(type_name: str, where: str) -> str:
    name = str(type_name).strip().lower()
    for kind, names in (("uninfected", UNINFECTED_TYPES), ("parasitized", PARASITIZED_TYPES),
                        ("difficult", DIFFICULT_TYPES), (NOT_RED, NOT_RED_TYPES)):
        if name in names:
            return kind
    known = ", ".join(UNINFECTED_TYPES + PARASITIZED_TYPES + DIFFICULT_TYPES + NOT_RED_TYPES)
    raise UserError(f"{where}: unknown object type {type_name!r} (known: {known})")


def _box(values, kind: str, where: str, type_name: str = "") -> Box:
    try:
        x, y, w, h = (float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{where}: a box needs four numbers x, y, w, h, got {values!r}") from None
    if w <= 0 or h <= 0:
        raise UserError(f"{where}: a box has no area ({values!r})")
    return Box(x, y, w, h, kind, str(type_name).strip().lower())


def _name(name) -> str:
    """An image name as the labels give it, with forward slashes and no `./`."""
    return posixpath.normpath(str(name).replace("\\", "/"))


def _iml(entries: list, where: str) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for entry in entries:
        name = _name(entry["image_name"])
        boxes = out.setdefault(name, [])
        for obj in entry.get("objects", []):
            b = obj["bbox"]
            boxes.append(_box((b["x"], b["y"], b["w"], b["h"]), _kind(obj["type"], where), where, obj["type"]))
    return out


def _coco(data: dict, where: str) -> dict[str, list[Box]]:
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    files = {im["id"]: _name(im["file_name"]) for im in data["images"]}
    out: dict[str, list[Box]] = {name: [] for name in files.values()}
    for ann in data.get("annotations", []):
        if ann["category_id"] not in names or ann["image_id"] not in files:
            raise UserError(f"{where}: annotation {ann.get('id')} names an unknown category or image")
        name = names[ann["category_id"]]
        kind = "difficult" if ann.get("iscrowd") else _kind(name, where)
        out[files[ann["image_id"]]].append(_box(ann["bbox"], kind, where, name))
    return out


def load(path: str | Path, what: str = "--truth", not_red: bool = False) -> dict[str, list[Box]]:
    """{image name (its path as the file gives it, with forward slashes): its labelled boxes}, from IML's
    JSON list or a COCO file; one-line errors naming the file as `what`. Boxes of white blood cells (kind
    NOT_RED) are left out unless `not_red`."""
    return {name: [b for b in boxes if not_red or b.kind != NOT_RED]
            for name, boxes in _parse(_read(path, what), str(path)).items()}


def image_slides(path: str | Path, what: str = "--truth") -> dict[str, str]:
    """{image name: slide} for the images a COCO file gives a `slide` (the review page's export does)."""
    data = _read(path, what)
    if not isinstance(data, dict):
        return {}
    return {_name(im["file_name"]): str(im["slide"]) for im in data.get("images", [])
            if isinstance(im, dict) and "file_name" in im and im.get("slide") not in (None, "")}


def _read(path: str | Path, what: str):
    where = str(path)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what}: {where} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{what}: {where} is not a readable JSON file ({exc})") from None


def _parse(data, where: str) -> dict[str, list[Box]]:
    try:
        if isinstance(data, list):
            return _iml(data, where)
        if isinstance(data, dict) and "images" in data:
            return _coco(data, where)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not in the IML or COCO layout (missing {exc})") from None
    raise UserError(f"{where}: not in the IML layout (a list of images) or COCO's (images, annotations)")


def photo_keys(labelled: dict[str, list[Box]], photos: dict[str, str]) -> dict[str, str]:
    """{photo: the labelled image it is}, for photos given as {name: path under its input (forward slashes)}:
    by that path, else by base name; a path or base name shared by several photos (or a base name by several
    labelled images) names none of them."""
    paths = Counter(photos.values())
    bases = Counter(posixpath.basename(p) for p in photos.values())
    labelled_bases: dict[str, list[str]] = {}
    for name in labelled:
        labelled_bases.setdefault(posixpath.basename(name), []).append(name)
    keys = {}
    for photo, path in photos.items():
        base = posixpath.basename(path)
        if path in labelled and paths[path] == 1:
            keys[photo] = path
        elif len(labelled_bases.get(base, ())) == 1 and bases[base] == 1:
            keys[photo] = labelled_bases[base][0]
    return keys


@dataclass
class PhotoScore:
    found: int  # found cells scored (those on difficult boxes left out)
    labelled: int  # non-difficult labelled boxes
    matched: int
    parasitized_labelled: int
    parasitized_called: int  # found cells called parasitized (left-out ones excepted)
    parasitized_hits: int  # called parasitized and matched to a parasitized box
    parasitemia_error: float | None  # |found share - labelled share| of parasitized cells
    matched_iou50: int = 0  # of the same found cells, matched with an IoU of at least matching.MIN_IOU


def score_photo(found: np.ndarray, called: np.ndarray, boxes: list[Box]) -> PhotoScore:
    """Score one photo's found boxes (x, y, w, h) and their calls (True: parasitized) against its boxes."""
    pairs, ignored = match(found, boxes)
    keep = [i for i in range(len(found)) if i not in ignored]
    labelled = [b for b in boxes if b.kind != "difficult"]
    n_pos = sum(b.kind == "parasitized" for b in labelled)
    n_called = int(sum(bool(called[i]) for i in keep))
    hits = sum(bool(called[f]) and boxes[b].kind == "parasitized" for f, b in pairs)
    error = None
    if keep and labelled:
        error = abs(n_called / len(keep) - n_pos / len(labelled))
    iou50 = len(match(np.asarray(found, float).reshape(-1, 4)[keep], boxes, iou_only=True)[0])
    return PhotoScore(len(keep), len(labelled), len(pairs), n_pos, n_called, hits, error, iou50)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


def summarise(scores: dict[str, PhotoScore]) -> dict:
    """Detection precision/recall/F1, parasitized-cell recall/precision and parasitemia error over photos."""
    tot = {k: sum(getattr(s, k) for s in scores.values()) for k in
           ("found", "labelled", "matched", "matched_iou50", "parasitized_labelled", "parasitized_called",
            "parasitized_hits")}

    def detection(matched: int) -> dict:
        return {"precision": _ratio(matched, tot["found"]), "recall": _ratio(matched, tot["labelled"]),
                "f1": _ratio(2 * matched, tot["found"] + tot["labelled"])}

    errors = [s.parasitemia_error for s in scores.values() if s.parasitemia_error is not None]
    return {
        "photos": len(scores),
        **{k: int(v) for k, v in tot.items()},
        "detection": detection(tot["matched"]),
        "detection_iou50": detection(tot["matched_iou50"]),
        "parasitized": {"recall": _ratio(tot["parasitized_hits"], tot["parasitized_labelled"]),
                        "precision": _ratio(tot["parasitized_hits"], tot["parasitized_called"])},
        "parasitemia_abs_error": {"mean": round(float(np.mean(errors)), 6) if errors else None,
                                  "median": round(float(np.median(errors)), 6) if errors else None,
                                  "max": round(float(np.max(errors)), 6) if errors else None},
        "per_photo": {name: {"found": s.found, "labelled": s.labelled, "matched": s.matched,
                             "matched_iou50": s.matched_iou50,
                             "parasitemia_abs_error": None if s.parasitemia_error is None
                             else round(s.parasitemia_error, 6)} for name, s in scores.items()},
    }


class Scoring:
    """The photos of a run as they come, scored against the labelled boxes once every photo is known
    (photo_keys needs them all); only the found boxes of photos that may be labelled are kept."""

    def __init__(self, labelled: dict[str, list[Box]]):
        self.labelled = labelled
        self.bases = {posixpath.basename(name) for name in labelled}
        self.photos: list[tuple[str, str, str]] = []  # (name, path under its input, "read" | "referred" | "failed")
        self.found: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, name: str, path: str, state: str, found: np.ndarray | None = None,
            called: np.ndarray | None = None, dropped: np.ndarray | None = None,
            dropped_why: list[str] | None = None) -> None:
        """One photo: its found boxes (x, y, w, h) and calls (True: parasitized) when it was read and counted,
        and the boxes of the regions its segmentation left out, and why (to say why a labelled cell was missed)."""
        self.photos.append((name, path, state))
        if state == "read" and (path in self.labelled or posixpath.basename(path) in self.bases):
            self.found[name] = (found, called, np.zeros((0, 4)) if dropped is None else dropped, dropped_why or [])

    def summary(self) -> dict:
        """summarise's figures over the photos read and labelled, and the labelled cells found by type (missed.py);
        the photos read without boxes, the labelled
        photos that failed (and their boxes, in no figure), and the photos whose name is in the labels but
        names no one image (photo_keys)."""
        keys = photo_keys(self.labelled, {name: path for name, path, _ in self.photos})
        read = [name for name, _, state in self.photos if state == "read"]
        scored = [name for name in read if name in keys]
        result = summarise({name: score_photo(*self.found[name][:2], self.labelled[keys[name]]) for name in scored})
        result["found_by_type"] = missed.summarise({name: missed.tally(self.found[name][0], *self.found[name][2:],
                                                             self.labelled[keys[name]]) for name in scored},
                                          {name: self.labelled[keys[name]] for name in scored})
        failed = [name for name, _, state in self.photos if state == "failed" and name in keys]
        result["photos_without_boxes"] = [name for name in read if name not in keys]
        result["photos_failed"] = failed
        result["labelled_in_failed_photos"] = sum(b.kind != "difficult" for name in failed
                                                  for b in self.labelled[keys[name]])
        result["photos_ambiguous"] = [name for name, path, _ in self.photos
                                      if name not in keys and posixpath.basename(path) in self.bases]
        return result


def pooled(summary: dict, estimate) -> dict:
    """The labelled photos' true parasitized share against their corrected parasitemia pooled
    (parasitemia.Estimate): how far it is (corrected over true) and whether its interval holds the truth."""
    true = _ratio(summary["parasitized_labelled"], summary["labelled"])
    out = {"true": true, **{k: None if np.isnan(v := getattr(estimate, k)) else round(float(v), 6)
                            for k in ("called", "corrected", "lower", "upper")}}
    out["corrected_over_true"] = _ratio(out["corrected"], true) if true and out["corrected"] is not None else None
    out["covered"] = None if true is None or out["lower"] is None else bool(out["lower"] <= true <= out["upper"])
    return out


def line(summary: dict, dest: str) -> str:
    """The one printed detection line."""
    d, p, e = summary["detection"], summary["parasitized"], summary["parasitemia_abs_error"]

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    mae = "n/a" if e["mean"] is None else f"{100 * e['mean']:.2f} points"
    pool = summary.get("pooled_parasitemia")
    if pool and pool["corrected"] is not None and pool["true"] is not None:
        mae += (f"; pooled parasitemia {pool['true']:.2%} labelled, {pool['corrected']:.2%} corrected "
                f"({pool['lower']:.2%}-{pool['upper']:.2%})")
    return (f"detection: {summary['matched']:,} of {summary['labelled']:,} labelled red cells found in "
            f"{summary['photos']} photos, precision {f(d['precision'])}, recall {f(d['recall'])}, F1 {f(d['f1'])}; "
            f"parasitized cells: recall {f(p['recall'])}, precision {f(p['precision'])}; "
            f"parasitemia mean absolute error {mae} -> {dest}")
