"""Smear photos from phones: turned by their EXIF orientation, followed by a motion photo's video, HEIC."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from malaria_cnn.data import images
from malaria_cnn.screening import screen
from malaria_cnn.screening.synthetic_field import make_field


def _save(rgb: np.ndarray, fmt: str, orientation: int = 1, **options) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, fmt, exif=exif.tobytes(), **options)
    return out.getvalue()


def _upright(stored: bytes, turn: int) -> bytes:
    """A lossless file of the stored pixels (as OpenCV decodes them, orientation ignored) turned by
    `turn` quarter turns counter-clockwise: what a viewer shows, with no orientation left to apply."""
    bgr = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED)
    return images.encode_png(cv2.cvtColor(np.ascontiguousarray(np.rot90(bgr, turn)), cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize("fmt, orientation, turn", [("JPEG", 6, -1), ("JPEG", 8, 1), ("PNG", 6, -1)])
def test_a_turned_photo_gives_the_cells_of_the_photo_as_displayed(fmt, orientation, turn):
    field = make_field(3).rgb
    stored = _save(np.rot90(field, -turn), fmt, orientation, **({"quality": 92} if fmt == "JPEG" else {}))
    turned = screen.prepare(screen.Item("turned", stored), 32)
    upright = screen.prepare(screen.Item("upright.png", _upright(stored, turn)), 32)
    assert turned.error == upright.error == "" and len(upright.boxes) > 20
    assert turned.rgb.shape == field.shape and np.array_equal(turned.rgb, upright.rgb)
    assert np.array_equal(turned.boxes, upright.boxes)


def test_a_motion_photo_gives_the_cells_of_its_picture():
    jpeg = _save(make_field(4).rgb, "JPEG", quality=92)
    still = screen.prepare(screen.Item("still.jpg", jpeg), 32)
    motion = screen.prepare(screen.Item("motion.jpg", jpeg + b"\x00\x00\x00\x1cftypisom" + bytes(5000)), 32)
    assert motion.error == "" and len(still.boxes) > 20
    assert np.array_equal(motion.boxes, still.boxes)
    cut = screen.prepare(screen.Item("cut.jpg", jpeg[: len(jpeg) // 2]), 32)
    assert cut.error == "truncated file"


def test_a_heic_photo_is_screened_turned_upright():
    field = make_field(5).rgb
    heic = _save(np.rot90(field, 1), "HEIF", 6, quality=95)
    photo = screen.prepare(screen.Item("IMG_0001.HEIC", heic), 32)
    png = screen.prepare(screen.Item("a.png", images.encode_png(field)), 32)
    assert photo.error == "" and photo.rgb.shape == field.shape
    assert np.abs(photo.rgb.astype(int) - field).mean() < 3
    assert abs(len(photo.boxes) - len(png.boxes)) <= 2
