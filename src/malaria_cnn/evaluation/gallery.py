"""Contact sheets of cells with captions: the test split's most confident mistakes, Grad-CAM rows."""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.core.labels import POSITIVE

TILE = 128  # pixels per cell on the sheet: crops are small, so they are shown enlarged
_CAPTION = 34  # pixels under each tile for two lines of text
_PAD = 6
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _INK = (255, 255, 255), (30, 30, 30)


def _tile(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (TILE, TILE), interpolation=cv2.INTER_NEAREST if rgb.shape[0] < TILE else cv2.INTER_AREA)


def _text(img: np.ndarray, line: str, x: int, y: int, scale: float = 0.4) -> None:
    cv2.putText(img, line, (x, y), _FONT, scale, _INK, 1, cv2.LINE_AA)


def contact_sheet(title: str, rows: list[tuple[str, list[tuple[np.ndarray, str, str]]]], columns: int) -> np.ndarray:
    """An RGB image: a title, then per row a label and up to `columns` tiles with two caption lines.

    `rows` holds (row label, [(rgb crop, caption line 1, caption line 2), ...]).
    """
    label_w = 44 if any(label for label, _ in rows) else 0
    width = label_w + columns * (TILE + _PAD) + _PAD
    cell_h = TILE + _CAPTION
    height = 30 + max(1, len(rows)) * (cell_h + _PAD) + _PAD
    img = np.full((height, width, 3), _WHITE, np.uint8)
    _text(img, title, _PAD, 20, 0.5)
    for r, (label, tiles) in enumerate(rows):
        top = 30 + r * (cell_h + _PAD)
        if label:
            _text(img, label, _PAD, top + TILE // 2, 0.6)
        if not tiles:
            _text(img, "none", label_w + _PAD, top + TILE // 2)
        for c, (rgb, line1, line2) in enumerate(tiles[:columns]):
            left = label_w + _PAD + c * (TILE + _PAD)
            img[top:top + TILE, left:left + TILE] = _tile(rgb)
            _text(img, line1, left, top + TILE + 13)
            _text(img, line2, left, top + TILE + 28)
    return img


def confident_mistakes(y: np.ndarray, prob: np.ndarray, threshold: float, n: int) -> list[int]:
    """Indices of up to `n` mistakes: missed parasitized cells first, then false alarms, each most
    confidently wrong first; each kind gets at least half the places when it has that many."""
    positive, called = np.asarray(y) == POSITIVE, prob >= threshold
    fn = np.flatnonzero(positive & ~called)
    fp = np.flatnonzero(~positive & called)
    fn = fn[np.argsort(prob[fn], kind="stable")]
    fp = fp[np.argsort(-prob[fp], kind="stable")]
    n_fn = min(len(fn), max(n - len(fp), -(-n // 2)))
    return [int(i) for i in np.r_[fn[:n_fn], fp[:n - n_fn]]]


def mistakes_sheet(x: np.ndarray, y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float,
                   n: int, columns: int = 8) -> np.ndarray:
    """The gallery of the most confident mistakes, captioned with outcome, probability and slide."""
    picked = confident_mistakes(y, prob, threshold, n)
    tiles = [(x[i], f"{'FN' if y[i] == POSITIVE else 'FP'}  p={prob[i]:.3f}", f"slide {slides[i]}") for i in picked]
    title = (f"Most confident mistakes at threshold {threshold:.3f} (FN: parasitized called uninfected; "
             f"FP: the reverse; p = P(Parasitized))")
    rows = [("", tiles[i:i + columns]) for i in range(0, len(tiles), columns)] or [("", [])]
    return contact_sheet(title, rows, columns)
