"""Labelled photos: reading boxes (IML JSON or COCO) and scoring found cells against them.

A found cell matches one labelled box, one to one, when its centre lies in the box or their IoU is
at least 0.5; the pairing found is the one with the most matches (ties: the highest total IoU).
`difficult` boxes are neither hits nor misses: a found cell that matches one is left out. Boxes
of white blood cells (leukocytes) are not red cells: a cell found on one is a false positive.
Parasitized is the positive class: a box is parasitized when its type is a parasite stage.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from malaria_cnn.core.errors import UserError

UNINFECTED_TYPES = ("red blood cell", "rbc", "uninfected", "healthy")
PARASITIZED_TYPES = ("ring", "trophozoite", "schizont", "gametocyte", "parasitized", "infected")
DIFFICULT_TYPES = ("difficult",)
NOT_RED_TYPES = ("leukocyte", "white blood cell", "wbc")


@dataclass(frozen=True)
class Box:
    x: float  # top-left corner, in the photo's pixels
    y: float
    w: float
    h: float
    kind: str = "uninfected"  # uninfected | parasitized | difficult

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px <= self.x + self.w and self.y <= py <= self.y + self.h


def _kind(type_name: str, where: str) -> str | None:
    name = str(type_name).strip().lower()
    for kind, names in (("uninfected", UNINFECTED_TYPES), ("parasitized", PARASITIZED_TYPES),
                        ("difficult", DIFFICULT_TYPES), ("", NOT_RED_TYPES)):
        if name in names:
            return kind or None
    known = ", ".join(UNINFECTED_TYPES + PARASITIZED_TYPES + DIFFICULT_TYPES + NOT_RED_TYPES)
    raise UserError(f"{where}: unknown object type {type_name!r} (known: {known})")


def _box(values, kind: str, where: str) -> Box:
    try:
        x, y, w, h = (float(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{where}: a box needs four numbers x, y, w, h, got {values!r}") from None
    if w <= 0 or h <= 0:
        raise UserError(f"{where}: a box has no area ({values!r})")
    return Box(x, y, w, h, kind)


def _iml(entries: list, where: str) -> dict[str, list[Box]]:
    out: dict[str, list[Box]] = {}
    for entry in entries:
        name = posixpath.basename(str(entry["image_name"]).replace("\\", "/"))
        boxes = out.setdefault(name, [])
        for obj in entry.get("objects", []):
            kind = _kind(obj["type"], where)
            if kind:
                b = obj["bbox"]
                boxes.append(_box((b["x"], b["y"], b["w"], b["h"]), kind, where))
    return out


def _coco(data: dict, where: str) -> dict[str, list[Box]]:
    names = {c["id"]: c["name"] for c in data.get("categories", [])}
    files = {im["id"]: posixpath.basename(str(im["file_name"]).replace("\\", "/")) for im in data["images"]}
    out: dict[str, list[Box]] = {name: [] for name in files.values()}
    for ann in data.get("annotations", []):
        if ann["category_id"] not in names or ann["image_id"] not in files:
            raise UserError(f"{where}: annotation {ann.get('id')} names an unknown category or image")
        kind = "difficult" if ann.get("iscrowd") else _kind(names[ann["category_id"]], where)
        if kind:
            out[files[ann["image_id"]]].append(_box(ann["bbox"], kind, where))
    return out


def load(path: str | Path) -> dict[str, list[Box]]:
    """{photo file name: its labelled boxes}, from IML's JSON list or a COCO file; one-line errors."""
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--truth: {where} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--truth: {where} is not a readable JSON file ({exc})") from None
    try:
        if isinstance(data, list):
            return _iml(data, where)
        if isinstance(data, dict) and "images" in data:
            return _coco(data, where)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not in the IML or COCO layout (missing {exc})") from None
    raise UserError(f"{where}: not in the IML layout (a list of images) or COCO's (images, annotations)")


def _iou(found: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every found box (n, 4: x, y, w, h) with every labelled box (m, 4)."""
    fx0, fy0, fx1, fy1 = found[:, 0:1], found[:, 1:2], found[:, 0:1] + found[:, 2:3], found[:, 1:2] + found[:, 3:4]
    bx0, by0, bx1, by1 = boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]
    inter = np.clip(np.minimum(fx1, bx1) - np.maximum(fx0, bx0), 0, None) * \
        np.clip(np.minimum(fy1, by1) - np.maximum(fy0, by0), 0, None)
    union = found[:, 2:3] * found[:, 3:4] + boxes[:, 2] * boxes[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def _candidates(found: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray]:
    """(may match (n, m) bool, IoU (n, m)) of found boxes against labelled boxes."""
    if not len(found) or not boxes:
        return np.zeros((len(found), len(boxes)), bool), np.zeros((len(found), len(boxes)))
    arr = np.array([(b.x, b.y, b.w, b.h) for b in boxes], float)
    iou = _iou(found, arr)
    cx, cy = found[:, 0:1] + found[:, 2:3] / 2, found[:, 1:2] + found[:, 3:4] / 2
    inside = (cx >= arr[:, 0]) & (cx <= arr[:, 0] + arr[:, 2]) & (cy >= arr[:, 1]) & (cy <= arr[:, 1] + arr[:, 3])
    return inside | (iou >= 0.5), iou


def match(found: np.ndarray, boxes: list[Box]) -> tuple[list[tuple[int, int]], set[int]]:
    """One-to-one pairs (found index, box index) with non-difficult boxes, and the found cells to leave
    out because they match a difficult box. `found` holds (x, y, w, h) rows."""
    found = np.asarray(found, float).reshape(-1, 4)
    scored = [i for i, b in enumerate(boxes) if b.kind != "difficult"]
    difficult = [b for b in boxes if b.kind == "difficult"]
    ok, iou = _candidates(found, [boxes[i] for i in scored])
    pairs: list[tuple[int, int]] = []
    if ok.any():
        weight = np.where(ok, (min(ok.shape) + 1) + iou, 0.0)  # more matches first, then more IoU
        rows, cols = linear_sum_assignment(weight, maximize=True)
        pairs = [(int(r), scored[c]) for r, c in zip(rows, cols) if ok[r, c]]
    matched = {r for r, _ in pairs}
    on_difficult, _ = _candidates(found, difficult)
    ignored = {i for i in range(len(found)) if i not in matched and on_difficult[i].any()}
    return pairs, ignored


@dataclass
class PhotoScore:
    found: int  # found cells scored (those on difficult boxes left out)
    labelled: int  # non-difficult labelled boxes
    matched: int
    parasitized_labelled: int
    parasitized_called: int  # found cells called parasitized (left-out ones excepted)
    parasitized_hits: int  # called parasitized and matched to a parasitized box
    parasitemia_error: float | None  # |found share - labelled share| of parasitized cells


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
    return PhotoScore(len(keep), len(labelled), len(pairs), n_pos, n_called, hits, error)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


def summarise(scores: dict[str, PhotoScore]) -> dict:
    """Detection precision/recall/F1, parasitized-cell recall/precision and parasitemia error over photos."""
    tot = {k: sum(getattr(s, k) for s in scores.values()) for k in
           ("found", "labelled", "matched", "parasitized_labelled", "parasitized_called", "parasitized_hits")}
    precision, recall = _ratio(tot["matched"], tot["found"]), _ratio(tot["matched"], tot["labelled"])
    f1 = _ratio(2 * tot["matched"], tot["found"] + tot["labelled"])
    errors = [s.parasitemia_error for s in scores.values() if s.parasitemia_error is not None]
    return {
        "photos": len(scores),
        **{k: int(v) for k, v in tot.items()},
        "detection": {"precision": precision, "recall": recall, "f1": f1},
        "parasitized": {"recall": _ratio(tot["parasitized_hits"], tot["parasitized_labelled"]),
                        "precision": _ratio(tot["parasitized_hits"], tot["parasitized_called"])},
        "parasitemia_abs_error": {"mean": round(float(np.mean(errors)), 6) if errors else None,
                                  "median": round(float(np.median(errors)), 6) if errors else None,
                                  "max": round(float(np.max(errors)), 6) if errors else None},
        "per_photo": {name: {"found": s.found, "labelled": s.labelled, "matched": s.matched,
                             "parasitemia_abs_error": None if s.parasitemia_error is None
                             else round(s.parasitemia_error, 6)} for name, s in scores.items()},
    }


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
