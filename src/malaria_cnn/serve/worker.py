"""The screening worker: one background thread that takes the queued photos, oldest first, screens them
by `screen`'s own path (screening/screen.py: the same decoding, segmentation, cut, stain check, read-ahead
and per-photo error isolation) and stores each photo's outcome as soon as it is done.

The model is loaded once, by the server; `lock` keeps the worker's scoring and a page's Grad-CAM from
running through it at once. Photos are taken from the queue oldest first, a small batch at a time, and
the next batch as screening's read-ahead asks for it, so the cores do not idle between batches. A screened
photo is stored (its crops encoded, its rows committed and synced) by a thread of its own while the next
photos are screened; at most STORING_AHEAD photos wait for it, so memory stays bounded. A photo's display
copy and its cells' model inputs are made when a page asks for them (serve/display.py, serve/explain.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import cv2
import numpy as np

from malaria_cnn.data.cpus import available_cores
from malaria_cnn.screening import crops
from malaria_cnn.screening.screen import Photo, internal_error, screen
from malaria_cnn.serve import summary
from malaria_cnn.serve.display import display_scale
from malaria_cnn.serve.store import Store

STORING_AHEAD = 2  # photos screened and waiting to be stored while the next are screened
OUTLINE_TOLERANCE = 0.75  # pixels an outline may move when simplified (the page draws thousands of them)
log = logging.getLogger("malaria_cnn.serve")


def cell_records(photo: Photo) -> list[dict]:
    """The rows of a screened photo's cells for the store: each cell's crop, lossless, and its kind (red cell or
    uncertain object); not its model input, which a page that asks for it gets made from the crop
    (serve/explain.py input_png)."""
    out = []
    for i, (box, p, label) in enumerate(zip(photo.boxes, photo.p, photo.labels)):
        outline = cv2.approxPolyDP(photo.outlines[i].reshape(-1, 1, 2), OUTLINE_TOLERANCE, True).reshape(-1, 2)
        x, y, w, h = (int(v) for v in box)
        out.append({"n": i + 1, "x": x, "y": y, "w": w, "h": h, "p": float(p), "label": label,
                    "outline": outline.tolist(), "crop": crops.to_png(photo.cut[i], crops.FASTEST_PNG),
                    "input": b"", "kind": photo.kinds[i] if i < len(photo.kinds) else ""})
    return out


class Worker:
    """Screens the store's queued photos in a thread of its own until `stop`.

    Whatever fails for one photo (screening, its cells' records, storing them) fails that photo alone, with
    its reason; a batch whose screening breaks off is screened again photo by photo. A photo interrupted
    by a server that stopped is screened alone at the next start, and failed if the server stops again
    (Store.requeue_interrupted). `running` and `error` say how the thread is doing."""

    def __init__(self, store: Store, workspace: Path, scoring, lock: threading.Lock, max_pixels: int,
                 model_sha256: str = "", batch: int | None = None):
        self.store, self.workspace, self.m, self.lock = store, Path(workspace), scoring, lock
        self.max_pixels, self.model_sha256 = max_pixels, model_sha256
        self.rule = summary.Rule(scoring.threshold, scoring.rule)
        self.batch = batch or 2 * available_cores() + 2
        self.wake, self._stop = threading.Event(), threading.Event()
        self.error = ""  # the last error that stopped a round of the loop (the photos' own are theirs)
        self.thread = threading.Thread(target=self._run, name="screening", daemon=True)
        self._storing = ThreadPoolExecutor(1, thread_name_prefix="storing")

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def start(self) -> Worker:
        requeued, failed = self.store.requeue_interrupted()
        if requeued or failed:
            log.info("resuming %d photos left mid-screening; %d failed (interrupted twice)", requeued, failed)
        self.thread.start()
        return self

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self.wake.set()
        self.thread.join(timeout)
        self._storing.shutdown(wait=True)

    def _score(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.m.score(x)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.store.claim(self.batch)
                if not claimed:
                    self.wake.wait(1.0)
                    self.wake.clear()
                    continue
                left = self.screen_batch(claimed)
                if left and not self._stop.is_set():  # the batch broke off: the rest one by one
                    for row in left:
                        self.screen_batch([row], alone=True)
                if self._stop.is_set():
                    self.store.release([row["id"] for row in claimed])
                self.error = ""
            except Exception as exc:  # the store itself failed: said by /api/status, tried again shortly
                log.exception("the screening worker failed")
                self.error = internal_error(exc)
                self._stop.wait(1.0)

    def screen_batch(self, claimed: list[dict], alone: bool = False) -> list[dict]:
        """Screen and store these claimed photos, and (unless `alone`) those queued meanwhile, claimed as the
        last are screened (_stream); those left unscreened when the screening broke off (or a photo's own
        error when `alone`: it is failed with it). Photos claimed but not screened when the worker stops
        are put back in the queue."""
        left, storing = {}, deque()
        m = self.m
        try:
            for photo in screen(self._score, self._stream(claimed, left, alone), m.size, m.threshold, None, "",
                                m.stain_mode, m.stain_range, progress=False, max_pixels=self.max_pixels):
                if self._stop.is_set():
                    return []
                storing.append(self._storing.submit(self.save, left.pop(photo.name)["id"], photo))
                del photo
                while len(storing) > STORING_AHEAD:
                    storing.popleft().result()
            while storing:
                storing.popleft().result()
        except Exception as exc:
            if not alone:
                log.warning("screening a batch broke off (%s): its photos are screened one by one", exc)
                return list(left.values())
            log.exception("screening photo %s failed", claimed[0]["id"])
            for row in left.values():
                self.store.save_result(row["id"], "failed", internal_error(exc), "", None, None, [])
        finally:
            wait(storing)  # the photos screened are stored before their batch is done
            if self._stop.is_set():
                self.store.release([row["id"] for row in left.values()])
        return []

    def _stream(self, claimed: list[dict], left: dict[str, dict], alone: bool) -> Iterator[str]:
        """The claimed photos' paths, then those of the next photos queued, claimed as screening asks for
        them: its read-ahead keeps every core busy from one batch to the next. Each photo is in `left` (by
        path) from its claim until it is screened. A photo to be screened alone (`alone`, or claimed so:
        Store.claim) is screened with no other; one met in the queue ends the stream (put back: the loop
        claims it by itself)."""
        batch = claimed
        while batch:
            paths = [str(self.workspace / "uploads" / row["file"]) for row in batch]
            left.update(zip(paths, batch))
            yield from paths
            if alone or claimed[0]["alone"] or self._stop.is_set():
                return
            batch = self.store.claim(self.batch)
            if batch and batch[0]["alone"]:
                self.store.release([row["id"] for row in batch])
                return

    def save(self, photo_id: int, photo: Photo) -> None:
        """Store a screened photo's cells (its display copy is made when a page asks: serve/display.py), or
        its failure; any error fails it alone."""
        try:
            if photo.error:
                self.store.save_result(photo_id, "failed", photo.error, "", None, None, [])
                return
            height, width = photo.rgb.shape[:2]
            cells = cell_records(photo)
            keyed = [{**c, "id": c["n"], "photo_id": photo_id} for c in cells]  # keyed by n until stored
            flagged = self.rule.flagged(keyed)
            counts = summary.photo_counts(self.rule, keyed, flagged)
            for c in cells:
                c["flagged"] = c["n"] in flagged
            self.store.save_result(photo_id, "referred" if photo.referred else "done", "", photo.referred,
                                   (width, height), display_scale(photo.rgb.shape), cells, self.model_sha256, counts)
        except Exception as exc:
            log.exception("storing photo %s failed", photo_id)
            self.store.save_result(photo_id, "failed", internal_error(exc), "", None, None, [])
