"""Grad-CAM for one cell of a screened photo, as a picture the page shows beside its crop."""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.data import images
from malaria_cnn.evaluation import gradcam

SIDE = 192  # pixels of the picture's side


def gradcam_png(model, input_png: bytes, label: str) -> bytes:
    """The model's input for the cell with the heat map of the evidence for its call laid over it, as PNG."""
    x = cv2.cvtColor(cv2.imdecode(np.frombuffer(input_png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    heat = gradcam.heatmaps(model, x[None], np.array([CLASS_NAMES.index(label)]))[0]
    picture = cv2.resize(gradcam.overlay(x, heat), (SIDE, SIDE), interpolation=cv2.INTER_NEAREST)
    return images.encode_png(picture)
