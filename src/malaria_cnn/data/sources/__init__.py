"""Data sources: one module per kind of data set, each giving its cells with a label.

synthetic.py makes the built-in set, folder.py reads a folder of crops, zipped.py a zip of
crops (a user's, or NIH's cell_images.zip that nih.py downloads); labelled smear photos are cut by
screening/labelled.py, which the ingest stage hands to ingest. ingest.py picks one by `data.source`
and turns its cells into the raw archive and its manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import ClassDirs
from malaria_cnn.data.images import IMAGE_SUFFIXES
from malaria_cnn.data.names import safe_name  # noqa: F401  (the sources' and predict's)

_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r"}


@dataclass(frozen=True)
class Cell:
    member: str  # the crop's path inside the raw archive
    label: str  # one of labels.CLASS_NAMES
    read: Callable[[], bytes]  # the encoded image file; may raise OSError for an unreadable one
    origin: str = ""  # where the user finds it, if not at `member` (a folder source's relative path)
    slide: str = ""  # its slide, where the source knows it (photos); else ingest reads it from the name
    source: str = ""  # the name of the source it came from (ingest sets it)

    @property
    def where(self) -> str:
        return self.origin or self.member


def label_of(parts: Sequence[str], class_dirs: ClassDirs) -> str | None:
    """The class of the nearest enclosing folder named for one (case-insensitive), if any."""
    names = {getattr(class_dirs, c).lower(): c for c in CLASS_NAMES}
    for part in reversed(parts[:-1]):
        if part.lower() in names:
            return names[part.lower()]
    return None


def below_class_dir(parts: Sequence[str], class_dirs: ClassDirs) -> str:
    """The part of a path below its nearest class folder, e.g. `sub/x.png` of `a/Parasitized/sub/x.png`."""
    names = {getattr(class_dirs, c).lower() for c in CLASS_NAMES}
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].lower() in names:
            return "/".join(parts[i + 1 :])
    return parts[-1]


def is_quietly_skipped(parts: Sequence[str]) -> bool:
    """Files that are not crops and need no report: hidden, system and non-image files."""
    name = parts[-1]
    if name.startswith(".") or name.lower() in _SYSTEM_FILES or any(p == "__MACOSX" or p.startswith(".") for p in parts[:-1]):
        return True
    return not name.lower().endswith(IMAGE_SUFFIXES)
