import cv2
import numpy as np
import pytest

from malaria_cnn.images import ImageError, decode_rgb, encode_png, load_cell, resize


def _png_bgr(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def test_decode_returns_rgb_not_bgr():
    red_rgb = np.zeros((10, 12, 3), np.uint8)
    red_rgb[..., 0] = 200
    out = decode_rgb(encode_png(red_rgb))
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8
    assert np.array_equal(out, red_rgb)
    # a file OpenCV itself wrote from a BGR array with blue=200 decodes with blue last
    blue_bgr = np.zeros((4, 4, 3), np.uint8)
    blue_bgr[..., 0] = 200
    assert decode_rgb(_png_bgr(blue_bgr))[0, 0].tolist() == [0, 0, 200]


def test_grayscale_16bit_and_alpha_become_8bit_rgb():
    gray = np.full((5, 5), 100, np.uint8)
    assert decode_rgb(_png_bgr(gray))[0, 0].tolist() == [100, 100, 100]
    deep = np.full((5, 5, 3), 65535, np.uint16)
    assert decode_rgb(_png_bgr(deep))[0, 0].tolist() == [255, 255, 255]
    bgra = np.zeros((5, 5, 4), np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = 0  # fully transparent: composited on black
    bgra[0, 0, 3] = 255
    out = decode_rgb(_png_bgr(bgra))
    assert out[0, 0].tolist() == [200, 0, 0] and out[1, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_undecodable_bytes_raise_image_error(data):
    with pytest.raises(ImageError):
        decode_rgb(data)


def test_resize_and_load_cell_shapes():
    img = np.random.default_rng(0).integers(0, 255, (130, 97, 3), np.uint8)
    assert resize(img, 64).shape == (64, 64, 3)
    assert resize(img[:20, :20], 64).shape == (64, 64, 3)
    assert load_cell(encode_png(img), 32).shape == (32, 32, 3)
