"""Decode an image file to RGB uint8, resize it, standardise its stain: the one path every crop takes into a model."""

from __future__ import annotations

import hashlib
import io
import struct

import cv2
import numpy as np
from PIL import Image

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import stain

Image.MAX_IMAGE_PIXELS = None  # the size is checked here, against params, before decoding
cv2.setNumThreads(1)  # crops are small: parallelism comes from processes, and no OpenCV thread outlives a fork
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DEFAULT_MAX_PIXELS = PreprocessParams().max_pixels
DEFAULT_MIN_SIDE = PreprocessParams().min_side


class ImageError(UserError):
    """An image file that cannot be used; its message is the reason."""


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file's header alone, or None when it cannot be read."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # not a format Pillow knows: OpenCV decides
        return None


def check_size(data: bytes, min_side: int, max_pixels: int) -> None:
    """Read only the header: refuse tiny images and decompression bombs before any pixel is decoded."""
    size = _header_size(data)
    if size is None:
        return
    width, height = size
    if width * height > max_pixels:
        raise ImageError(f"too large: {width}x{height} pixels is more than {max_pixels:,}")
    if min(width, height) < min_side:
        raise ImageError(f"too small: {width}x{height}, a side is below {min_side} pixels")


def _looks_truncated(data: bytes) -> bool:
    # OpenCV fills a cut-off JPEG with grey instead of failing; PNG and JPEG have end markers
    if data[:2] == b"\xff\xd8":
        return not data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-16:]
    return False


def _decode_bgr(data: bytes, min_side: int, max_pixels: int) -> np.ndarray:
    """Decode to OpenCV's own BGR uint8 order, shape (h, w, 3), after every check."""
    if not data:
        raise ImageError("empty file")
    check_size(data, min_side, max_pixels)
    if _looks_truncated(data):
        raise ImageError("truncated file")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise ImageError("not a readable image")
    if min(img.shape[:2]) < min_side or img.shape[0] * img.shape[1] > max_pixels:
        raise ImageError(f"size {img.shape[1]}x{img.shape[0]} is outside the allowed range")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.uint16)
        img = ((img[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return img


def decode_rgb(data: bytes, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG/TIFF/BMP bytes to an RGB uint8 array of shape (h, w, 3).

    OpenCV decodes to BGR: the channels are swapped here, once. Grayscale becomes three equal
    channels, an alpha channel is composited on black (the NIH background), 16 bits become 8.
    Raises ImageError with the reason for an empty, truncated, undecodable, tiny or huge image.
    """
    return cv2.cvtColor(_decode_bgr(data, min_side, max_pixels), cv2.COLOR_BGR2RGB)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: area averaging when shrinking (no aliasing), bilinear when growing."""
    shrinking = img.shape[0] * img.shape[1] > size * size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


def decode_cell(data: bytes, size: int, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
                stain_mode: str = stain.DEFAULT_MODE) -> tuple[np.ndarray, bytes, np.ndarray]:
    """The model's input (RGB uint8 of shape (size, size, 3)), a digest of the full-size pixels, and the
    cell's median optical density per channel before stain standardisation (see stain.py).

    The same pixels give the same digest whatever the file's encoding: preprocess finds
    duplicates with it. Channels are swapped after resizing, which gives the same array as
    before (resizing treats each channel alone) for a quarter of the work on NIH-sized crops.
    """
    bgr = _decode_bgr(data, min_side, max_pixels)
    digest = hashlib.sha256(bgr).digest() + struct.pack(">II", *bgr.shape[:2])
    x, od = _model_input(bgr, size, stain_mode)
    return x, digest, od


def _model_input(bgr: np.ndarray, size: int, stain_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Decoded full-size pixels (BGR) to the model's input (resized, RGB, stain-standardised) and the
    cell's optical density."""
    return stain.standardised(cv2.cvtColor(resize(bgr, size), cv2.COLOR_BGR2RGB), stain_mode)


def cell_input(rgb: np.ndarray, size: int, stain_mode: str = stain.DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray]:
    """A cell already in memory (RGB uint8, e.g. cut from a smear photo) to the model's input and its
    optical density, by the very steps `read_cell` takes after decoding: what a lossless file of these
    pixels would give."""
    return _model_input(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), size, stain_mode)


def read_cell(data: bytes, size: int, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
              stain_mode: str = stain.DEFAULT_MODE) -> tuple[np.ndarray, np.ndarray]:
    """Image file bytes to the model's input (RGB uint8 of shape (size, size, 3)) and the cell's optical density."""
    return _model_input(_decode_bgr(data, min_side, max_pixels), size, stain_mode)


def load_cell(data: bytes, size: int, min_side: int = DEFAULT_MIN_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
              stain_mode: str = stain.DEFAULT_MODE) -> np.ndarray:
    """Image file bytes to the model's input: RGB uint8 of shape (size, size, 3)."""
    return read_cell(data, size, min_side, max_pixels, stain_mode)[0]


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG bytes (deterministic for the same pixels)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError("PNG encoding failed")
    return buf.tobytes()
