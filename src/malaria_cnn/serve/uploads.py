"""Uploaded files into the workspace: each photo, or each photo in a zip, stored under its id, never
under the name it was sent with.

A photo is checked by its content as `screen` checks it (a format the decoder knows; its size read from
the header, so a decompression bomb is refused before any pixel is decoded); a zip's entries are read
as `screen` reads them (data/inputs.py: unsafe entries refused, nothing extracted). A file refused here
still becomes a photo of its slide, failed with its reason, so the page can say what happened to it. The
photos an upload makes are counted (photo_count) before any of them is kept, so a slide never holds more
than its limit.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

from malaria_cnn.data import images
from malaria_cnn.data.inputs import Limits, items, member, zip_item_count
from malaria_cnn.data.names import safe_name
from malaria_cnn.screening.screen import MAX_PIXELS
from malaria_cnn.serve.limits import MB, UploadLimits
from malaria_cnn.serve.store import Store
from malaria_cnn.serve.upload_stream import Received

INTERRUPTED = "the upload was interrupted: send the photo again"


def _display_name(name: str) -> str:
    """What the page shows for a sent file name: its last part, as UTF-8 text, at most 200 characters."""
    return safe_name(posixpath.basename(name.replace("\\", "/")))[:200] or "(no name)"


def problem(data: bytes, name: str, limits: UploadLimits) -> str:
    """Why these bytes cannot be screened, when their name or header tells; "" when they may be."""
    if refused := images.refused_by_name(name):
        return refused
    if images.image_format(data) is None:
        return "not an image this app can read (checked by its content): send JPEG, PNG, TIFF, BMP, WebP or HEIC"
    try:
        images.check_size(data, 1, limits.max_pixels or MAX_PIXELS)
    except images.ImageError as exc:
        return str(exc)
    return ""


def _store(store: Store, folder: Path, slide_id: int, name: str, data: bytes, limits: UploadLimits) -> int:
    """One photo's bytes stored under its id and queued, or its photo failed with the reason."""
    reason = problem(data, name, limits)
    if reason:
        return store.add_photo(slide_id, name, "failed", reason)
    photo_id = store.add_photo(slide_id, name, "failed", INTERRUPTED)  # queued only once its file is whole
    suffix = Path(name).suffix.lower()
    file = f"{photo_id}{suffix if suffix in images.IMAGE_SUFFIXES else ''}"
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    store.queue_photo(photo_id, file)
    return photo_id


def is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _zip_limits(limits: UploadLimits) -> Limits:
    return Limits(1, limits.max_pixels or MAX_PIXELS, limits.max_upload_mb)


def _zipped(f: Received) -> bool:
    if f.too_large:
        return False
    with open(f.path, "rb") as fh:
        return is_zip(fh.read(4))


def photo_count(files: list[Received], limits: UploadLimits) -> int:
    """How many photos these sent files make (a zip: one per entry read, from its directory alone)."""
    return sum(zip_item_count(f.path, _zip_limits(limits)) if _zipped(f) else 1 for f in files)


def accept(store: Store, folder: Path, slide_id: int, f: Received, limits: UploadLimits) -> list[int]:
    """The photos of one sent file, stored under `folder` and queued: the file itself, or every photo in it
    when it is a zip (the caller checked the slide's room: photo_count). Their ids, in order."""
    name = _display_name(f.name)
    if f.too_large:
        return [store.add_photo(slide_id, name, "failed",
                                f"file of {f.size / MB:,.1f} MB is larger than the upload limit ({limits.max_upload_mb} MB)")]
    if not _zipped(f):
        return [_store(store, folder, slide_id, name, f.path.read_bytes(), limits)]
    zipped = f.path.with_suffix(".zip")
    if zipped != f.path:
        os.replace(f.path, zipped)
    ids = []
    for item in items([zipped], _zip_limits(limits)):
        shown = f"{name}:{member(item.name)}" if ":" in item.name else name
        if item.problem:
            ids.append(store.add_photo(slide_id, shown[:300], "failed", item.problem))
        else:
            ids.append(_store(store, folder, slide_id, shown[:300], item.data, limits))
    return ids
