"""The screening worker: one background thread that takes the queued photos, oldest first, screens them
by `screen`'s own path (screening/screen.py: the same decoding, segmentation, cut, stain check, read-ahead
and per-photo error isolation) and stores each photo's outcome as soon as it is done.

The model is loaded once, by the server; `lock` keeps the worker's scoring and a page's Grad-CAM from
running through it at once. A photo is taken from the queue in small batches, so a slide uploaded while
another is screened waits for a batch, not for the whole queue.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.data.cpus import available_cores
from malaria_cnn.screening import crops
from malaria_cnn.screening.screen import Photo, internal_error, screen
from malaria_cnn.serve.store import Store

DISPLAY_SIDE = 2000  # the longest side of a photo as the page shows it
OUTLINE_TOLERANCE = 0.75  # pixels an outline may move when simplified (the page draws thousands of them)
log = logging.getLogger("malaria_cnn.serve")


def display_copy(rgb: np.ndarray) -> tuple[bytes, float]:
    """The photo as JPEG for the page, its longest side at most DISPLAY_SIDE, and its scale (display px per
    photo px)."""
    scale = min(1.0, DISPLAY_SIDE / max(rgb.shape[:2]))
    if scale < 1:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return buf.tobytes(), scale


def cell_records(photo: Photo) -> list[dict]:
    """The rows of a screened photo's cells for the store."""
    out = []
    for i, (box, p, label) in enumerate(zip(photo.boxes, photo.p, photo.labels)):
        outline = cv2.approxPolyDP(photo.outlines[i].reshape(-1, 1, 2), OUTLINE_TOLERANCE, True).reshape(-1, 2)
        x, y, w, h = (int(v) for v in box)
        out.append({"n": i + 1, "x": x, "y": y, "w": w, "h": h, "p": float(p), "label": label,
                    "outline": outline.tolist(), "crop": crops.to_png(photo.cut[i]),
                    "input": crops.to_png(photo.inputs[i])})  # lossless, at a fast level
    return out


class Worker:
    """Screens the store's queued photos in a thread of its own until `stop`."""

    def __init__(self, store: Store, workspace: Path, scoring, lock: threading.Lock, max_pixels: int,
                 batch: int | None = None):
        self.store, self.workspace, self.m, self.lock = store, Path(workspace), scoring, lock
        self.max_pixels = max_pixels
        self.batch = batch or 2 * available_cores() + 2
        self.wake, self._stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="screening", daemon=True)

    def start(self) -> Worker:
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.info("resuming %d photos left mid-screening", requeued)
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self.wake.set()
        self.thread.join(timeout)

    def _score(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.m.score(x)

    def _run(self) -> None:
        while not self._stop.is_set():
            claimed = self.store.claim(self.batch)
            if not claimed:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                self.screen_batch(claimed)
            except Exception as exc:  # never leave photos marked as being screened by a worker that goes on
                log.exception("screening failed")
                for row in claimed:
                    if self.store.photo(row["id"])["state"] == "screening":
                        self.store.save_result(row["id"], "failed", internal_error(exc), "", None, None, [])

    def screen_batch(self, claimed: list[dict]) -> None:
        uploads = self.workspace / "uploads"
        paths = [uploads / row["file"] for row in claimed]
        ids = {str(path): row["id"] for path, row in zip(paths, claimed)}
        m = self.m
        for photo in screen(self._score, paths, m.size, m.threshold, None, "", m.stain_mode, m.stain_range,
                            progress=False, max_pixels=self.max_pixels):
            if self._stop.is_set():
                return  # the rest stay marked as being screened: requeued at the next start
            photo_id = ids[photo.name]
            self.save(photo_id, photo)
            del photo

    def save(self, photo_id: int, photo: Photo) -> None:
        if photo.error:
            self.store.save_result(photo_id, "failed", photo.error, "", None, None, [])
            return
        jpeg, scale = display_copy(photo.rgb)
        atomic.write_bytes(self.workspace / "display" / f"{photo_id}.jpg", jpeg)
        height, width = photo.rgb.shape[:2]
        self.store.save_result(photo_id, "referred" if photo.referred else "done", "", photo.referred,
                               (width, height), scale, cell_records(photo))
