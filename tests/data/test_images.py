import cv2
import numpy as np
import pytest

from malaria_cnn.data.images import (
    ImageError,
    decode_rgb,
    encode_png,
    load_cell,
    resize,
)


def _encode_bgr(img: np.ndarray, ext: str = ".png") -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


def test_decode_returns_rgb_not_bgr():
    red_rgb = np.zeros((20, 24, 3), np.uint8)
    red_rgb[..., 0] = 200
    out = decode_rgb(encode_png(red_rgb))
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    assert np.array_equal(out, red_rgb)
    # a file OpenCV itself wrote from a BGR array with blue=200 decodes with blue last
    blue_bgr = np.zeros((20, 20, 3), np.uint8)
    blue_bgr[..., 0] = 200
    assert decode_rgb(_encode_bgr(blue_bgr))[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".bmp"])
def test_every_supported_format_decodes(ext):
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 2] = 220  # red
    out = decode_rgb(_encode_bgr(bgr, ext))
    assert out.shape == (32, 32, 3) and abs(int(out[16, 16, 0]) - 220) <= 3 and out[16, 16, 2] <= 3


def test_grayscale_16bit_and_alpha_become_8bit_rgb():
    gray = np.full((20, 20), 100, np.uint8)
    assert decode_rgb(_encode_bgr(gray))[0, 0].tolist() == [100, 100, 100]
    deep = np.full((20, 20, 3), 65535, np.uint16)
    assert decode_rgb(_encode_bgr(deep))[0, 0].tolist() == [255, 255, 255]
    bgra = np.zeros((20, 20, 4), np.uint8)
    bgra[..., 2] = 200  # red
    bgra[..., 3] = 0  # fully transparent: composited on black
    bgra[0, 0, 3] = 255
    out = decode_rgb(_encode_bgr(bgra))
    assert out[0, 0].tolist() == [200, 0, 0] and out[1, 1].tolist() == [0, 0, 0]


def test_unusable_files_raise_with_their_reason():
    png = encode_png(np.full((40, 40, 3), 90, np.uint8))
    jpeg = _encode_bgr(np.full((40, 40, 3), 90, np.uint8), ".jpg")
    cases = {
        b"": "empty file",
        b"not an image": "not a readable image",
        png[: len(png) // 2]: "truncated file",
        jpeg[:-100]: "truncated file",
        encode_png(np.zeros((10, 40, 3), np.uint8)): "too small: 40x10",
    }
    for data, reason in cases.items():
        with pytest.raises(ImageError) as err:
            decode_rgb(data)
        assert str(err.value).startswith(reason)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode_png(np.zeros((3000, 3000, 3), np.uint8))  # tiny file, 9 M pixels
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match=r"too large: 3000x3000 pixels is more than 4,000,000"):
        decode_rgb(bomb)
    assert decode_rgb(bomb, max_pixels=10_000_000).shape == (3000, 3000, 3)


def test_resize_and_load_cell_shapes():
    img = np.random.default_rng(0).integers(0, 255, (130, 97, 3), np.uint8)
    assert resize(img, 64).shape == (64, 64, 3)
    assert resize(img[:20, :20], 64).shape == (64, 64, 3)
    assert load_cell(encode_png(img), 32).shape == (32, 32, 3)
