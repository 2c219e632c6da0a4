"""Decode an image file to RGB uint8, resize it, standardise its stain: the one path every crop takes into a model."""

from __future__ import annotations

import hashlib
import io
import re
import struct

import cv2
import numpy as np
from PIL import Image
from pillow_heif import register_heif_opener

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import stain

Image.MAX_IMAGE_PIXELS = None  # the size is checked here, against params, before decoding
register_heif_opener()  # HEIC/HEIF: Pillow reads the header and decodes, OpenCV cannot
cv2.setNumThreads(1)  # crops are small: parallelism comes from processes, and no OpenCV thread outlives a fork
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif")  # decoded here
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")  # refused by name
PHOTO_SUFFIXES = IMAGE_SUFFIXES + RAW_SUFFIXES + (".gif", ".avif", ".jxl", ".jp2", ".hif", ".psd")  # like an image
DEFAULT_MAX_PIXELS = PreprocessParams().max_pixels
DEFAULT_MIN_SIDE = PreprocessParams().min_side


class ImageError(UserError):
    """An image file that cannot be used; its message is the reason."""


def refused_by_name(name: str) -> str | None:
    """Why a file cannot be used, when its name alone tells (a camera's raw photo), or None."""
    raw = next((s for s in RAW_SUFFIXES if name.lower().endswith(s)), None)
    return f"{raw[1:].upper()} raw photos are not supported: export a JPEG" if raw else None


def _header(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, format) from the file's header alone, or None when it cannot be read.

    The size is the stored one: for a JPEG, PNG or WebP with an EXIF orientation of 5-8 its sides
    are swapped on display, which changes neither the pixel count nor the shorter side.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return *struct.unpack(">II", data[16:24]), "PNG"
    try:
        with Image.open(io.BytesIO(data)) as im:
            return *im.size, im.format
    except Exception:  # not a format Pillow knows: OpenCV decides
        return None


def image_format(data: bytes) -> str | None:
    """The format of an image file by its content (its header: PNG, JPEG, TIFF, BMP, WebP, HEIF...), or None."""
    header = _header(data)
    return header[2] if header else None


def check_size(data: bytes, min_side: int, max_pixels: int) -> None:
    """Read only the header: refuse tiny images and decompression bombs before any pixel is decoded."""
    _check_size(_header(data), min_side, max_pixels)


def _check_size(header: tuple[int, int, str] | None, min_side: int, max_pixels: int) -> None:
    if header is None:
        return
    width, height, _ = header
    if width * height > max_pixels:
        raise ImageError(f"too large: {width}x{height} pixels is more than {max_pixels:,}")
    if min(width, height) < min_side:
        raise ImageError(f"too small: {width}x{height}, a side is below {min_side} pixels")


_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # not a stuffed 0xFF, a restart marker or fill
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # JPEG markers without a length


def _jpeg_end(data: bytes) -> int | None:
    """Where the JPEG that starts `data` ends (just past its end-of-image marker), or None when the data
    stops before it. Segments are skipped by their lengths and scans up to their next marker, so an EXIF
    thumbnail's end marker is not taken for the image's, and bytes after the image (a phone's trailer,
    a motion photo's video) are not part of it."""
    i, n = 2, len(data)
    while True:
        i = data.find(b"\xff", i)
        while 0 <= i < n - 1 and data[i + 1] == 0xFF:
            i += 1
        if i < 0 or i >= n - 1:
            return None
        marker = data[i + 1]
        if marker == 0xD9:
            return i + 2
        if marker in _STANDALONE:
            i += 2
            continue
        if i + 4 > n:
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = _MARKER_IN_SCAN.search(data, i)
            if found is None:
                return None
            i = found.start()


def _image_bytes(data: bytes) -> memoryview:
    """The bytes of the image itself; raises ImageError for a cut-off one (OpenCV fills a cut-off JPEG
    with grey instead of failing)."""
    if data[:2] == b"\xff\xd8":
        end = _jpeg_end(data)
        if end is None:
            raise ImageError("truncated file")
        return memoryview(data)[:end]
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-16:]:
        raise ImageError("truncated file")
    return memoryview(data)


def _orientation(types, metadata) -> int:
    """The EXIF orientation (1-8) among OpenCV's metadata, 1 when there is none."""
    for kind, blob in zip(types, metadata):
        if kind == cv2.IMAGE_METADATA_EXIF:
            exif = Image.Exif()
            try:
                exif.load(np.asarray(blob, np.uint8).tobytes())
            except Exception:  # a damaged EXIF block: the pixels as stored
                return 1
            value = exif.get(0x0112, 1)
            return value if value in range(1, 9) else 1
    return 1


def _orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels to the displayed ones, for an EXIF orientation 1-8."""
    if orientation in (5, 6, 7, 8):
        img = img.swapaxes(0, 1)  # 5: transposed; 6, 7, 8 are 5 flipped
    if orientation in (2, 3, 6, 7):
        img = img[:, ::-1]
    if orientation in (3, 4, 7, 8):
        img = img[::-1]
    return np.ascontiguousarray(img)


def _decode_opencv(data: memoryview) -> np.ndarray | None:
    """OpenCV's decoding as stored (BGR, any depth, alpha kept), then turned as the EXIF orientation says.

    Only the unchanged mode keeps alpha and 16 bits, and it leaves JPEG, PNG and WebP unturned: the
    orientation comes with the metadata OpenCV reads from just those formats (its TIFF decoder turns
    the pixels itself and reports none).
    """
    try:
        img, types, metadata = cv2.imdecodeWithMetadata(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if img is None or img.size == 0:
        return None
    return _orient(img, _orientation(types, metadata))


def _decode_pillow(data: memoryview) -> np.ndarray | None:
    """Pillow's decoding (HEIC/HEIF, turned by the file's own transforms) in OpenCV's BGR or BGRA order."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGBA" if im.has_transparency_data else "RGB"))
    except Exception:
        return None
    return cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR)


def _decode_bgr(data: bytes, min_side: int, max_pixels: int) -> np.ndarray:
    """Decode to OpenCV's own BGR uint8 order, shape (h, w, 3), as displayed, after every check."""
    if not data:
        raise ImageError("empty file")
    header = _header(data)
    _check_size(header, min_side, max_pixels)
    image = _image_bytes(data)
    img = _decode_pillow(image) if header is not None and header[2] == "HEIF" else _decode_opencv(image)
    if img is None:
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
    """Decode PNG/JPEG/TIFF/BMP/WebP/HEIC bytes to an RGB uint8 array of shape (h, w, 3), as a viewer shows it.

    The EXIF orientation is applied; bytes after a whole JPEG are ignored. OpenCV decodes to BGR: the
    channels are swapped here, once. Grayscale becomes three equal channels, an alpha channel is
    composited on black (the NIH background), 16 bits become 8. Raises ImageError with the reason for
    an empty, truncated, undecodable, tiny or huge image.
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
