import cv2
import numpy as np

from malaria_cnn.screening import segment
from malaria_cnn.screening.field import field_mask
from malaria_cnn.screening.synthetic_field import make_field


def _on_black_disc(rgb: np.ndarray, radius: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    disc = np.zeros((h, w), np.uint8)
    cv2.circle(disc, (w // 2, h // 2), radius, 255, -1)
    return np.where(disc[..., None] > 0, rgb, 0).astype(np.uint8), disc


def test_a_circular_field_on_black_is_found():
    rgb, disc = _on_black_disc(np.full((300, 400, 3), 220, np.uint8), 140)
    mask = field_mask(rgb)
    inside = mask > 0
    assert inside[disc == 0].sum() == 0  # nothing outside the disc
    assert inside[disc > 0].mean() > 0.9  # most of it, less a thin rim


def test_a_photo_without_black_surround_is_all_field():
    assert (field_mask(np.full((200, 300, 3), 200, np.uint8)) == 255).all()


def test_black_ink_is_left_out_but_is_no_surround():
    photo = np.full((200, 300, 3), 200, np.uint8)
    cv2.line(photo, (200, 180), (280, 180), (0, 0, 0), 3)  # a burned-in scale bar
    mask = field_mask(photo)
    assert (mask[175:186, 200:281] == 0).any() and mask[180, 240] == 0 and mask[150, 240] == 255
    assert (mask == 255).mean() > 0.98


def test_no_cell_is_found_on_the_black_surround():
    f = make_field(3, cells=40)
    rgb, disc = _on_black_disc(f.rgb, 200)
    seg = segment.segment(rgb)
    for x, y, w, h in seg.boxes:
        assert disc[y + h // 2, x + w // 2] > 0
    inside = [b for b in f.cells if disc[int(b.y + b.h / 2), int(b.x + b.w / 2)] and
              np.hypot(b.x + b.w / 2 - 320, b.y + b.h / 2 - 240) < 200 - max(b.w, b.h)]
    assert len(seg.boxes) >= len(inside) > 5
