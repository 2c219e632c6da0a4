"""Keep one copy of each duplicate image; leave out images filed under both classes."""

from __future__ import annotations

from collections import defaultdict


def dedupe(keys: list, labels: list[str], names: list[str]) -> tuple[list[bool], list[tuple[str, str]]]:
    """Which items to keep, and (name, reason) for each left out.

    Items with equal keys (a hash of their bytes or pixels) are the same image: under one class
    the first is kept and the others are duplicates; under both classes it is a label conflict
    and every copy is left out, since no one can say which label is right.
    """
    groups: dict = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    keep = [True] * len(keys)
    rejects = []
    for idx in groups.values():
        if len(idx) == 1:
            continue
        if len({labels[i] for i in idx}) > 1:
            for i in idx:
                keep[i] = False
                others = ", ".join(names[j] for j in idx if j != i)
                rejects.append((names[i], f"label conflict: the same image is filed as {labels[i]} and as "
                                          f"{', '.join(sorted({labels[j] for j in idx} - {labels[i]}))} ({others})"))
        else:
            for i in idx[1:]:
                keep[i] = False
                rejects.append((names[i], f"duplicate of {names[idx[0]]}"))
    return keep, sorted(rejects)
