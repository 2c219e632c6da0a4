"""Decode an image file to RGB uint8 and resize it: the one path every crop takes into the model."""

from __future__ import annotations

import cv2
import numpy as np

from malaria_cnn.errors import UserError


class ImageError(UserError):
    """An image file that cannot be decoded."""


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG/TIFF/BMP bytes to an RGB uint8 array of shape (h, w, 3).

    OpenCV decodes to BGR: the channels are swapped here, once. Grayscale becomes three equal
    channels, an alpha channel is composited on black (the NIH background), 16 bits become 8.
    """
    if not data:
        raise ImageError("empty file")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageError("not a readable image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.uint16)
        img = ((img[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: area averaging when shrinking (no aliasing), bilinear when growing."""
    shrinking = img.shape[0] * img.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


def load_cell(data: bytes, size: int) -> np.ndarray:
    """Image file bytes to the model's input: RGB uint8 of shape (size, size, 3)."""
    return resize(decode_rgb(data), size)


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG bytes (deterministic for the same pixels)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()
