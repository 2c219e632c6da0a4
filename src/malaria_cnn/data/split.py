"""Split cells into train/val/test and cross-validation folds, stratified by label and grouped by slide.

Grouping by slide keeps every cell of a patient's slide in one split (and one fold), so results
speak of patients the model has never seen. The test split is a seeded search over random orders
of the slides for the cut whose class counts come closest to the requested fraction; the folds of
the rest come from scikit-learn's StratifiedGroupKFold. With several data sources, each split and
fold gets its share of every source's cells as well. Leakage is checked, not assumed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE
from malaria_cnn.data import cells_npz

SPLITS = ("train", "val", "test")
NOT_HELD_OUT = -1  # the fold of a test cell, and of a train cell when there is one fold
HEADER = ["file", "label", "slide", "split", "fold"]


def _carve(counts: np.ndarray, fraction: float, rng: np.random.Generator, tries: int) -> np.ndarray:
    """Choose groups (rows of `counts`, a groups x classes table) holding about `fraction` of each class.

    Returns a boolean mask over groups. At least one group is taken and at least one left.
    """
    n_groups = len(counts)
    target = fraction * counts.sum(axis=0)
    present = counts.sum(axis=0) > 0
    best_cost, best = np.inf, None
    for _ in range(tries):
        order = rng.permutation(n_groups)
        cum = np.cumsum(counts[order], axis=0)  # class counts taken after 1, 2, ... groups
        k = int(np.searchsorted(cum.sum(axis=1), target.sum()))
        for take in {max(1, k), max(1, k + 1)}:
            take = min(take, n_groups - 1)
            taken, left = cum[take - 1], cum[-1] - cum[take - 1]
            cost = np.abs(taken - target).sum()
            # a split without one of the classes cannot measure sensitivity or specificity
            cost += 1e9 * (np.sum(present & (taken == 0)) + np.sum(present & (left == 0)))
            if cost < best_cost:
                best_cost, best = cost, order[:take]
    mask = np.zeros(n_groups, bool)
    mask[best] = True
    return mask


def assign(labels: np.ndarray, groups: np.ndarray, test_size: float, val_size: float, seed: int,
           tries: int = 200, sources: np.ndarray | None = None) -> np.ndarray:
    """Name each cell's split ("train", "val" or "test").

    `test_size` is a fraction of all cells, `val_size` a fraction of what the test split leaves; with
    `sources` (each cell's), of each source's cells too.
    """
    uniq, group_of = np.unique(groups, return_inverse=True)
    if len(uniq) < 3:
        raise UserError(
            f"splitting by slide needs at least 3 slides, found {len(uniq)}; "
            "set split.group_by: none to split cells at random (results will then not be patient-level)"
        )
    classes = np.unique(labels, return_inverse=True)[1]
    counts = np.zeros((len(uniq), classes.max() + 2), np.int64)
    np.add.at(counts, (group_of, classes), 1)
    # the last column: slides without a parasitized cell (healthy patients), weighted as a slide's cells
    # so that each split gets its share of them and slide-level specificity can be measured everywhere
    healthy = ~np.isin(np.arange(len(uniq)), group_of[np.asarray(labels) == POSITIVE])
    counts[:, -1] = healthy * max(1, round(len(labels) / len(uniq)))
    if sources is not None and len(set(sources)) > 1:
        per_source = np.zeros((len(uniq), len(set(sources))), np.int64)
        np.add.at(per_source, (group_of, np.unique(sources, return_inverse=True)[1]), 1)
        counts = np.hstack([counts, per_source])

    rng = np.random.default_rng(seed)
    is_test = _carve(counts, test_size, rng, tries)
    rest = np.flatnonzero(~is_test)
    if len(rest) < 2:
        raise UserError("too few slides left after the test split for train and val")
    is_val = np.zeros(len(uniq), bool)
    is_val[rest[_carve(counts[rest], val_size, rng, tries)]] = True

    group_split = np.where(is_test, "test", np.where(is_val, "val", "train"))
    return group_split[group_of]


def assign_folds(labels: np.ndarray, groups: np.ndarray, splits: np.ndarray, folds: int, seed: int,
                 sources: np.ndarray | None = None) -> np.ndarray:
    """Each cell's fold (0..folds-1), or NOT_HELD_OUT; for folds >= 2 every non-test cell has one.

    `splits` names each cell's split as `assign` does ("train", "val", "test"). Fold k's model trains on the
    non-test cells outside fold k and scores fold k; with one fold, the fold is the val split. The folds are
    stratified by label, and by label and source with `sources`.
    """
    out = np.full(len(labels), NOT_HELD_OUT, np.int64)
    if folds == 1:
        out[splits == "val"] = 0
        return out
    rest = np.flatnonzero(splits != "test")
    n_groups = len(np.unique(groups[rest]))
    if n_groups < folds:
        raise UserError(f"cv.folds is {folds} but only {n_groups} slides are left after the test split: "
                        "use fewer folds or more slides")
    strata = np.asarray(labels)
    if sources is not None:
        strata = strata * len(set(sources)) + np.unique(sources, return_inverse=True)[1]
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(cv.split(np.zeros(len(rest)), strata[rest], groups[rest])):
        out[rest[held]] = k
    return out


def check_folds(groups: np.ndarray, splits: np.ndarray, folds: np.ndarray) -> None:
    """Raise unless folds are slide-disjoint and hold no test cell."""
    if np.any(folds[splits == "test"] != NOT_HELD_OUT):
        raise UserError("a test cell was put in a cross-validation fold")
    owner: dict = {}
    for group, fold in zip(groups[folds != NOT_HELD_OUT], folds[folds != NOT_HELD_OUT]):
        if owner.setdefault(group, fold) != fold:
            raise UserError(f"slide {group} is in folds {owner[group]} and {fold}")


def fold_sizes(labels: np.ndarray, groups: np.ndarray, folds: np.ndarray, n_folds: int) -> list[dict]:
    """Cells per class and slides in each fold."""
    out = []
    for k in range(n_folds):
        sel = folds == k
        out.append({"fold": k, "cells": int(sel.sum()), "parasitized": int(np.sum(labels[sel] == POSITIVE)),
                    "slides": len(set(groups[sel]))})
    return out


def fold_members(folds: np.ndarray, splits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held_out) boolean masks of fold k's model: it trains on the non-test cells outside fold k."""
    held = folds == k
    return (splits != "test") & ~held, held


def check_no_leakage(groups: np.ndarray, splits: np.ndarray) -> None:
    """Raise if any group has cells in more than one split."""
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                shared = set(groups[splits == a]) & set(groups[splits == b])
                if shared:
                    raise UserError(f"slides in both {a} and {b}: {', '.join(sorted(shared)[:5])}")


def sizes(labels: np.ndarray, groups: np.ndarray, splits: np.ndarray, sources: np.ndarray | None = None) -> dict:
    """Cells per class and slides in each split (and cells per source, with several)."""
    out = {}
    for name in SPLITS:
        sel = splits == name
        out[name] = {c: int(np.sum(labels[sel] == i)) for i, c in enumerate(CLASS_NAMES)}
        out[name]["slides"] = len(set(groups[sel]))
        if sources is not None and len(set(sources)) > 1:
            out[name]["sources"] = {str(s): int(np.sum(sources[sel] == s)) for s in sorted(set(sources))}
    return out


def summary(sizes: dict) -> str:
    """One line: cells and slides per split (and per fold)."""
    parts = [f"{name} {sum(s[c] for c in CLASS_NAMES)} cells from {s['slides']} slides"
             for name, s in sizes.items() if name in SPLITS and s["slides"]]
    per_fold = sizes.get("folds", [])
    if len(per_fold) > 1:
        slides = sorted(f["slides"] for f in per_fold)
        parts.append(f"train in {len(per_fold)} folds of {slides[0]}-{slides[-1]} slides")
    return "split: " + "; ".join(parts)


def write(dest: str | Path, files: np.ndarray, labels: np.ndarray, slides: np.ndarray, splits: np.ndarray,
          folds: np.ndarray) -> None:
    """One row per cell, in the npz's order: file, label name, slide, split, cross-validation fold."""
    rows = zip(files, (CLASS_NAMES[i] for i in labels), slides, splits, folds)
    atomic.write_csv(dest, HEADER, rows)


def read(path: str | Path, files: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's split name and fold, checked against the npz's file order."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the split stage first (dvc repro)") from None
    if len(rows) != len(files) or any(r["file"] != f or "fold" not in r for r, f in zip(rows, files)):
        raise UserError(f"{path} does not match the preprocessed cells: rerun the split stage (dvc repro)")
    return np.array([r["split"] for r in rows]), np.array([int(r["fold"]) for r in rows], np.int64)


def load_cells(npz_path: str | Path, splits_path: str | Path, *names: str) -> dict[str, dict[str, np.ndarray]]:
    """{name: {"x", "y", "slide", "filename": arrays}} for each split named."""
    arrays = cells_npz.load(npz_path)
    assigned = read(splits_path, arrays["filename"])[0]
    out = {}
    for name in names:
        sel = assigned == name
        if not sel.any():
            raise UserError(f"the {name} split is empty: use more cells or other split sizes")
        out[name] = {key: values[sel] for key, values in arrays.items()}
    return out


def load_fold(npz_path: str | Path, splits_path: str | Path, k: int) -> tuple[dict, dict]:
    """(train, held_out) cells of fold k's model, each {"x", "y", "slide", "filename": arrays}."""
    arrays = cells_npz.load(npz_path)
    assigned, fold = read(splits_path, arrays["filename"])
    train, held = fold_members(fold, assigned, k)
    if not held.any() or not train.any():
        raise UserError(f"fold {k} has no cells to {'score' if train.any() else 'train on'}: rerun the split stage")
    return ({key: v[train] for key, v in arrays.items()}, {key: v[held] for key, v in arrays.items()})
