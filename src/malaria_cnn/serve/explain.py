"""Grad-CAM for one cell of a screened photo, as a picture the page shows beside its crop."""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.data import images
from malaria_cnn.evaluation import gradcam
from malaria_cnn.screening import crops

SIDE = 192  # pixels of the picture's side


def gradcam_png(model, input_png: bytes, label: str) -> bytes:
    """The model's input for the cell with the heat map of the evidence for its call laid over it, as PNG."""
    x = cv2.cvtColor(cv2.imdecode(np.frombuffer(input_png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    heat = gradcam.heatmaps(model, x[None], np.array([CLASS_NAMES.index(label)]))[0]
    picture = cv2.resize(gradcam.overlay(x, heat), (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    return images.encode_png(picture)


def input_png(crop_png: bytes, size: int, stain_mode: str) -> bytes:
    """The model's input for a cell as PNG, made from its stored crop (lossless) as screening made it from the
    cut cell: the pixels the model scored, made when a page asks, not stored for every cell."""
    cut = cv2.cvtColor(cv2.imdecode(np.frombuffer(crop_png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return crops.to_png(crops.model_input(cut, size, stain_mode)[0])


CONTEXT_MARGIN = 1.0  # cell widths shown on each side of a cell in its neighbourhood


def context_png(display_jpeg: bytes, box: tuple[int, int, int, int], scale: float) -> bytes:
    """The cell as a microscopist judges it: in the photo's own colours and resolution (its display copy, at
    `scale` display pixels per photo pixel), with its neighbours around it, its box drawn, as PNG."""
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(display_jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    x, y, w, h = (round(v * scale) for v in box)
    mx, my = round(w * CONTEXT_MARGIN), round(h * CONTEXT_MARGIN)
    top, left = max(0, y - my), max(0, x - mx)
    window = rgb[top:min(rgb.shape[0], y + h + my), left:min(rgb.shape[1], x + w + mx)].copy()
    cv2.rectangle(window, (x - left - 2, y - top - 2), (x - left + w + 1, y - top + h + 1), (255, 255, 0), 1)
    return images.encode_png(window)
