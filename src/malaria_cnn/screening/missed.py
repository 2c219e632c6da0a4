"""Which labelled cells the segmentation found, by type (each parasite stage, plain red cells), and why
each of the others was lost.

A labelled cell is found when the centre of a found cell's box lies inside its box (whether or not the
one-to-one matching of `matching.match` pairs them). A missed cell is put down to the first of:
- a region left out whose box's centre lies inside its box: that region's verdict (`regions.verdicts`:
  debris, cut by the edge, white blood cell, ragged, elongated);
- a found cell whose box holds its centre: merged with that cell's neighbour, named by the labelled box
  the found cell's centre lies in ("merged with a plain cell", "merged, centre between cells");
- a region left out whose box holds its centre: merged into that region, and its verdict;
- none of these: not told from the background.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

STAGES = ("ring", "trophozoite", "schizont", "gametocyte")
PLAIN = "plain"
TYPES = (*STAGES, "parasitized", PLAIN)  # "parasitized": a parasitized box of no named stage
NO_REGION = "not told from the background"


def cell_type(box) -> str | None:
    """A labelled box's type as reported: its parasite stage, "parasitized" (no stage named), PLAIN for an
    uninfected red cell, None for boxes not scored (difficult, not a red cell)."""
    if box.kind == "parasitized":
        return box.type if box.type in STAGES else "parasitized"
    return PLAIN if box.kind == "uninfected" else None


def _centres(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return boxes[:, :2] + boxes[:, 2:] / 2


def _inside(points: np.ndarray, box) -> np.ndarray:
    return ((points[:, 0] >= box.x) & (points[:, 0] <= box.x + box.w) &
            (points[:, 1] >= box.y) & (points[:, 1] <= box.y + box.h))


def _holding(boxes: np.ndarray, x: float, y: float) -> np.ndarray:
    """Indices of the (x, y, w, h) rows that hold the point, nearest centre first."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    at = np.flatnonzero((boxes[:, 0] <= x) & (x <= boxes[:, 0] + boxes[:, 2]) &
                        (boxes[:, 1] <= y) & (y <= boxes[:, 1] + boxes[:, 3]))
    gap = np.hypot(*(_centres(boxes[at]) - (x, y)).T)
    return at[np.argsort(gap, kind="stable")]


def why_missed(box, found: np.ndarray, dropped: np.ndarray, dropped_why: list[str], labelled: list) -> str:
    """Why the labelled `box` has no found cell's centre inside it (the rules of the module's docstring);
    `labelled`: the photo's boxes, to name a merged neighbour."""
    dropped_centres = _centres(dropped)
    inside = np.flatnonzero(_inside(dropped_centres, box))
    if len(inside):
        gap = np.hypot(*(dropped_centres[inside] - (box.x + box.w / 2, box.y + box.h / 2)).T)
        return dropped_why[inside[np.argmin(gap)]]
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    holder = _holding(found, cx, cy)
    if len(holder):
        fx, fy = _centres(found[holder[:1]])[0]
        other = [cell_type(b) for b in labelled if b is not box and b.contains(fx, fy) and cell_type(b)]
        return f"merged with a {other[0]} cell" if other else "merged, centre between cells"
    holder = _holding(dropped, cx, cy)
    if len(holder):
        return f"merged, {dropped_why[holder[0]]}"
    return NO_REGION


def tally(found: np.ndarray, dropped: np.ndarray, dropped_why: list[str], boxes: list) -> dict:
    """One photo: {"labelled": Counter by type, "found": Counter by type, "why": Counter of (type, reason),
    "missed": [(box index, type, reason)]}."""
    centres = _centres(found)
    out = {"labelled": Counter(), "found": Counter(), "why": Counter(), "missed": []}
    for i, box in enumerate(boxes):
        kind = cell_type(box)
        if kind is None:
            continue
        out["labelled"][kind] += 1
        if _inside(centres, box).any():
            out["found"][kind] += 1
            continue
        reason = why_missed(box, np.asarray(found, float).reshape(-1, 4), np.asarray(dropped).reshape(-1, 4),
                            dropped_why, boxes)
        out["why"][kind, reason] += 1
        out["missed"].append((i, kind, reason))
    return out


def summarise(tallies: dict[str, dict], boxes: dict[str, list]) -> dict:
    """Over photos ({name: tally}; `boxes`: {name: its labelled boxes}): per type the cells labelled, found
    and the share found, and why the others were missed; the parasitized cells (all stages) together;
    and each missed parasitized cell (photo, box x, y, w, h, type, reason)."""
    labelled, found, why = Counter(), Counter(), Counter()
    missed = []
    for name, t in tallies.items():
        labelled.update(t["labelled"])
        found.update(t["found"])
        why.update(t["why"])
        for i, kind, reason in t["missed"]:
            if kind != PLAIN:
                b = boxes[name][i]
                missed.append({"photo": name, "box": [b.x, b.y, b.w, b.h], "type": kind, "why": reason})
    by_type = {}
    for kind in [k for k in TYPES if labelled[k]]:
        reasons = Counter({r: n for (k, r), n in why.items() if k == kind})
        by_type[kind] = {"labelled": labelled[kind], "found": found[kind],
                         "share": round(found[kind] / labelled[kind], 6), "missed_why": dict(reasons.most_common())}
    par = [k for k in by_type if k != PLAIN]
    n, k = sum(labelled[t] for t in par), sum(found[t] for t in par)
    return {"by_type": by_type, "parasitized": {"labelled": n, "found": k, "share": round(k / n, 6) if n else None},
            "missed_parasitized": missed}


def lines(summary: dict) -> list[str]:
    """The found share per type, and why the missed ones were lost, as printed lines."""
    out = []
    for kind, t in summary["by_type"].items():
        why = "; ".join(f"{r} {n}" for r, n in t["missed_why"].items())
        out.append(f"  {kind:12s} found {t['found']:,} of {t['labelled']:,} ({t['share']:.1%})"
                   + (f"; missed: {why}" if why else ""))
    return out
