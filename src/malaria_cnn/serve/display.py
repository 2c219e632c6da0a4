"""A photo's display copy: the JPEG the pages show (and cut a cell's neighbourhood from), made from the
photo's upload the first time a page asks for it and kept in the workspace (display/<photo id>.jpg), so
screening does not spend time on pictures nobody may open."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data import images
from malaria_cnn.screening.screen import MIN_SIDE

DISPLAY_SIDE = 2000  # the longest side of a photo as the page shows it
_MAKING = threading.Lock()  # atomic_path's temporary name is per process: one copy made at a time


def display_scale(shape: tuple[int, ...]) -> float:
    """Display px per photo px: the longest side at most DISPLAY_SIDE."""
    return min(1.0, DISPLAY_SIDE / max(shape[:2]))


def display_copy(rgb: np.ndarray) -> bytes:
    """The photo as JPEG for the page, at display_scale."""
    scale = display_scale(rgb.shape)
    if scale < 1:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return buf.tobytes()


def display_file(workspace: Path, photo: dict, max_pixels: int) -> Path | None:
    """The display copy of a photo (a store row with its `file`), made from its upload, decoded as screening
    decoded it, if it is not there yet; None for a photo not screened, failed, or whose upload is gone."""
    path = workspace / "display" / f"{photo['id']}.jpg"
    upload = workspace / "uploads" / photo["file"]
    if photo["state"] not in ("done", "referred"):
        return None
    with _MAKING:
        if not path.is_file() and photo["file"] and upload.is_file():
            atomic.write_bytes(path, display_copy(images.decode_rgb(upload.read_bytes(), MIN_SIDE, max_pixels)))
    return path if path.is_file() else None
