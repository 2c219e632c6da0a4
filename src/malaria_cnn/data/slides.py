"""Which slide (patient) a crop comes from, read from its file name."""

from __future__ import annotations

import posixpath
import re

_NIH = re.compile(r"^(.+?)_IMG_")
_PATIENT = re.compile(r"^C\d+", re.IGNORECASE)


def slide_of(path: str, pattern: str = "") -> str | None:
    """The slide group named by a crop's file name, or None when the name gives none.

    With `pattern` (a regex), its first group, or its whole match, is the slide. Without it, NIH's
    naming: the prefix before `_IMG_`, and prefixes sharing their `C<number>` are one patient's
    slide (NIH has variants such as `C39P4thinF_original`), so the group is that `C<number>`.
    """
    name = posixpath.basename(path.replace("\\", "/"))
    if pattern:
        m = re.search(pattern, name)
        if not m:
            return None
        return m.group(1) if m.groups() else m.group(0)
    m = _NIH.match(name)
    if not m:
        return None
    patient = _PATIENT.match(m.group(1))
    return patient.group(0).upper() if patient else m.group(1)


def in_source(source: str, slide: str) -> str:
    """A slide's name in a run of several sources (data.sources): the source's name, a slash, the slide."""
    return f"{source}/{slide}"


def source_of(slide: str, sources: list[str]) -> str:
    """Which of `sources` a slide named by `in_source` belongs to (the longest name that prefixes it)."""
    for name in sorted(sources, key=len, reverse=True):
        if slide.startswith(name + "/"):
            return name
    raise ValueError(f"slide {slide!r} is not of any source ({', '.join(sources)})")
