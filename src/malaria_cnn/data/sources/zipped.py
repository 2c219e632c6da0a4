"""A zip of crops with one folder per class (a user's, or NIH's cell_images.zip), read in place and safely.

Nothing is extracted. Entries that could escape a folder (absolute paths, `..`), links,
encrypted entries and entries past the size bound are rejected with their reason; an archive
whose entries add up to more than the total bound is refused as a whole.
"""

from __future__ import annotations

import stat
import zipfile
from functools import partial

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams
from malaria_cnn.data import archive
from malaria_cnn.data.sources import Cell, is_quietly_skipped, label_of

MB = 1 << 20


def cells(zf: zipfile.ZipFile, cfg: DataParams) -> tuple[list[Cell], list[tuple[str, str]], int]:
    """(cells, rejects as (entry, reason), number of entries skipped quietly), in archive order."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    total = sum(i.file_size for i in infos)
    if total > cfg.max_total_mb * MB:
        raise UserError(
            f"the archive would unpack to {total / MB:,.0f} MB, more than data.max_total_mb ({cfg.max_total_mb:,})"
        )
    found, rejects, skipped = [], [], 0
    repeated = repeated_names(infos)
    for info in infos:
        name = info.filename
        reason = unsafe_reason(info, cfg.max_entry_mb) or (REPEATED if name in repeated else None)
        if reason:
            rejects.append((name, reason))
            continue
        parts = name.replace("\\", "/").split("/")
        if is_quietly_skipped(parts):
            skipped += 1
            continue
        label = label_of(parts, cfg.class_dirs)
        if label is None:
            rejects.append((name, f"not inside a folder named {cfg.class_dirs.Parasitized} or {cfg.class_dirs.Uninfected}"))
            continue
        found.append(Cell(member=name, label=label, read=partial(zf.read, info)))
    return found, rejects, skipped


REPEATED = "the archive holds more than one entry of this name: which one is meant cannot be told"


def repeated_names(infos: list[zipfile.ZipInfo]) -> set[str]:
    """Entry names the archive holds more than once (readers by name see only the last)."""
    seen: set[str] = set()
    return {i.filename for i in infos if i.filename in seen or seen.add(i.filename)}


def unsafe_reason(info: zipfile.ZipInfo, max_entry_mb: int) -> str | None:
    """Why an entry must not be read (unsafe path, link, encrypted, too large), or None."""
    try:
        archive.check_member_name(info.filename)
    except UserError:
        return "unsafe path (absolute, or leading out of the archive with ..)"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    if info.file_size > max_entry_mb * MB:
        return f"entry of {info.file_size / MB:,.1f} MB is larger than data.max_entry_mb ({max_entry_mb})"
    return None
