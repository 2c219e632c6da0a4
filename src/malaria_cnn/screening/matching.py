"""One-to-one matching of found cells to labelled boxes.

A found cell matches one labelled box, one to one, when its centre lies in the box or their IoU is at
least MIN_IOU (with `iou_only`, when their IoU is); the pairing found is the one with the most matches
(ties: the highest total IoU), solved per connected group of candidate pairs, so that a photo of
thousands of cells is matched in about a second. `difficult` boxes are neither hits nor misses: a found
cell that matches one is left out.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

MIN_IOU = 0.5


def _iou(found: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every found box (n, 4: x, y, w, h) with every labelled box (m, 4)."""
    return _iou_of(found[:, None, :], boxes[None, :, :])


def _iou_of(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (..., 4: x, y, w, h), element by element."""
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., :2] + a[..., 2:], b[..., :2] + b[..., 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / np.maximum(union, 1e-9)


def _candidates(found: np.ndarray, boxes: list, iou_only: bool = False) -> tuple[np.ndarray, ...]:
    """(found index, box index, IoU) of the pairs that may match, found without comparing every pair:
    only boxes near enough to overlap are looked at."""
    none = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    if not len(found) or not boxes:
        return none
    arr = np.array([(b.x, b.y, b.w, b.h) for b in boxes], float)
    fc, bc = found[:, :2] + found[:, 2:] / 2, arr[:, :2] + arr[:, 2:] / 2
    reach = np.maximum((found[:, 2:].max(axis=0) + arr[:, 2:].max(axis=0)) / 2, 1e-9)  # farthest overlap, per axis
    near = cKDTree(bc / reach).query_ball_point(fc / reach, 1 + 1e-9, p=np.inf)
    fi = np.repeat(np.arange(len(found)), [len(n) for n in near])
    if not len(fi):
        return none
    bi = np.concatenate([np.asarray(n, int) for n in near])
    iou = _iou_of(found[fi], arr[bi])
    ok = iou >= MIN_IOU
    if not iou_only:
        x, y, w, h = arr[bi].T
        ok |= (fc[fi, 0] >= x) & (fc[fi, 0] <= x + w) & (fc[fi, 1] >= y) & (fc[fi, 1] <= y + h)
    return fi[ok], bi[ok], iou[ok]


def assign(rows: np.ndarray, cols: np.ndarray, iou: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (row, col) pairs among candidate pairs (rows[k], cols[k]) of IoU iou[k]: the most pairs,
    then the highest total IoU; solved on each connected group of candidates apart."""
    rows, cols, iou = np.asarray(rows, int), np.asarray(cols, int), np.asarray(iou, float)
    if not len(rows):
        return []
    n = rows.max() + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, n + cols)), shape=(n + cols.max() + 1,) * 2)
    group = connected_components(graph, directed=False)[1][rows]
    order = np.argsort(group, kind="stable")
    pairs = []
    for at in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
        if len(at) == 1:
            pairs.append((int(rows[at[0]]), int(cols[at[0]])))
            continue
        r, ri = np.unique(rows[at], return_inverse=True)
        c, ci = np.unique(cols[at], return_inverse=True)
        weight = np.zeros((len(r), len(c)))
        weight[ri, ci] = min(len(r), len(c)) + 1 + iou[at]  # more matches first, then more IoU
        for i, j in zip(*linear_sum_assignment(weight, maximize=True)):
            if weight[i, j] > 0:
                pairs.append((int(r[i]), int(c[j])))
    return sorted(pairs)


def match(found: np.ndarray, boxes: list, iou_only: bool = False) -> tuple[list[tuple[int, int]], set[int]]:
    """One-to-one pairs (found index, box index) with the non-difficult labelled boxes (truth.Box), and the found
    cells to leave out because they match a difficult box. `found` holds (x, y, w, h) rows; with `iou_only`, a pair needs
    an IoU of MIN_IOU whatever the centre."""
    found = np.asarray(found, float).reshape(-1, 4)
    scored = [i for i, b in enumerate(boxes) if b.kind != "difficult"]
    difficult = [b for b in boxes if b.kind == "difficult"]
    pairs = [(f, scored[b]) for f, b in assign(*_candidates(found, [boxes[i] for i in scored], iou_only))]
    matched = {f for f, _ in pairs}
    on_difficult = set(_candidates(found, difficult, iou_only)[0].tolist())
    return pairs, on_difficult - matched
