"""Uploaded files into the workspace: each photo, or each photo in a zip, stored under its id, never
under the name it was sent with.

A photo is checked by its content as `screen` checks it (a format the decoder knows; its size read from
the header, so a decompression bomb is refused before any pixel is decoded); a zip's entries are read
as `screen` reads them (data/inputs.py: unsafe entries refused, nothing extracted). A file refused here
still becomes a photo of its slide, failed with its reason, so the page can say what happened to it.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

from malaria_cnn.data import images
from malaria_cnn.data.inputs import Limits, items, member
from malaria_cnn.data.names import safe_name
from malaria_cnn.screening.screen import MAX_PIXELS
from malaria_cnn.serve.limits import MB, UploadLimits
from malaria_cnn.serve.store import Store

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


def accept(store: Store, folder: Path, slide_id: int, name: str, path: Path, size: int,
           limits: UploadLimits, room: int) -> list[int]:
    """The photos of one sent file (at `path`, `size` bytes), stored under `folder` and queued: the file
    itself, or every photo in it when it is a zip, at most `room` of them (the rest said in one failed
    photo). Their ids, in order."""
    name = _display_name(name)
    if size > limits.max_upload_mb * MB:
        return [store.add_photo(slide_id, name, "failed",
                                f"file of {size / MB:,.1f} MB is larger than the upload limit ({limits.max_upload_mb} MB)")]
    with open(path, "rb") as f:
        head = f.read(4)
    if not is_zip(head):
        return [_store(store, folder, slide_id, name, Path(path).read_bytes(), limits)]
    zipped = Path(path).with_suffix(".zip")
    if zipped != Path(path):
        os.replace(path, zipped)
    ids = []
    for item in items([zipped], Limits(1, limits.max_pixels or MAX_PIXELS, limits.max_upload_mb)):
        if len(ids) >= room:
            ids.append(store.add_photo(slide_id, name, "failed", f"the zip holds more photos than the slide has room "
                                       f"for (a slide holds at most {limits.max_photos_per_slide:,}): the rest left out"))
            break
        shown = f"{name}:{member(item.name)}" if ":" in item.name else name
        if item.problem:
            ids.append(store.add_photo(slide_id, shown[:300], "failed", item.problem))
        else:
            ids.append(_store(store, folder, slide_id, shown[:300], item.data, limits))
    return ids
