import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from malaria_cnn.data.images import (
    ImageError,
    decode_rgb,
    encode_png,
    load_cell,
    refused_by_name,
    resize,
)


def _encode_bgr(img: np.ndarray, ext: str = ".png") -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


def _pillow_encode(rgb: np.ndarray, fmt: str, orientation: int = 1, **options) -> bytes:
    """`rgb` as stored pixels in a file whose EXIF says how to turn them for display."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, fmt, exif=exif.tobytes(), **options)
    return out.getvalue()


def _as_displayed(data: bytes) -> np.ndarray:
    """What Pillow shows for a file, its EXIF orientation applied: a viewer's picture."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _stored(shape=(36, 52)) -> np.ndarray:
    """A picture whose every turn and flip differs: a gradient with a red top-left corner."""
    h, w = shape
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 200, w, dtype=np.uint8)[None, :]
    rgb[..., 2] = np.linspace(0, 200, h, dtype=np.uint8)[:, None]
    rgb[:8, :12] = (250, 0, 0)
    return rgb


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


def test_exif_orientation_is_applied_as_a_viewer_shows_it():
    stored = _stored()
    for fmt, options, tolerance in [("PNG", {}, 0), ("WEBP", {"lossless": True}, 0), ("JPEG", {"quality": 95}, 2),
                                    ("TIFF", {}, 0)]:
        for orientation in range(1, 9):
            data = _pillow_encode(stored, fmt, orientation, **options)
            out, seen = decode_rgb(data, min_side=1), _as_displayed(data)
            assert out.shape == seen.shape, (fmt, orientation)
            assert np.abs(out.astype(int) - seen).max() <= tolerance, (fmt, orientation)
            assert out.shape[:2] == (stored.shape[1::-1] if orientation >= 5 else stored.shape[:2]), (fmt, orientation)


def test_a_turned_photo_keeps_its_size_limits_and_alpha():
    stored = np.zeros((30, 100, 4), np.uint8)
    stored[..., 0], stored[:, :50, 3] = 200, 255  # red, the left half opaque
    turned = _pillow_encode(stored, "PNG", 6)
    out = decode_rgb(turned, min_side=30, max_pixels=3000)
    assert out.shape == (100, 30, 3)
    assert out[:50, :, 0].min() == 200 and out[50:].max() == 0  # the opaque half is now on top
    with pytest.raises(ImageError, match="too small: 100x30"):
        decode_rgb(turned, min_side=31)
    with pytest.raises(ImageError, match="too large"):
        decode_rgb(turned, max_pixels=2999)


def test_bytes_after_a_whole_jpeg_are_not_part_of_it_but_a_cut_off_jpeg_is_refused():
    rgb = _stored((64, 80))
    exif = Image.Exif()
    exif[0x0112] = 6
    thumbnail = b"\xff\xd8\xff\xd9"  # an end marker inside the EXIF block, before the image's own
    for jpeg in (_pillow_encode(rgb, "JPEG", 6, quality=90), _pillow_encode(rgb, "JPEG", progressive=True)):
        whole = decode_rgb(jpeg, min_side=1)
        mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40 + b"\xff\xd9"  # a motion photo's video
        samsung = b"\x00" * 10 + b"SEFH" + b"\xff\xd8\xff\xe1" + b"trailer" + b"SEFT"
        for trailer in (mp4, samsung, jpeg):  # the last: a second picture, as in a multi-picture file
            assert np.array_equal(decode_rgb(jpeg + trailer, min_side=1), whole)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", exif=exif.tobytes() + thumbnail, quality=90, progressive=True)
    jpeg = out.getvalue()
    assert decode_rgb(jpeg, min_side=1).shape == (80, 64, 3)
    for cut in (len(jpeg) - 2, len(jpeg) * 2 // 3, len(jpeg) // 3):
        with pytest.raises(ImageError, match="truncated file"):
            decode_rgb(jpeg[:cut], min_side=1)


def test_heic_decodes_turned_by_its_own_transform_and_checked_before_decoding():
    photo = np.zeros((48, 64, 3), np.uint8)
    photo[..., 0] = 180
    photo[:, :16] = (40, 40, 160)  # a blue left band
    heic = _pillow_encode(photo, "HEIF", 6, quality=90)
    assert heic[4:12] == b"ftypheic"
    out = decode_rgb(heic, min_side=1)
    assert out.shape == (64, 48, 3)
    assert out[:16, :, 2].mean() > 140 and out[20:, :, 0].mean() > 160  # the band is now on top
    with pytest.raises(ImageError, match="too large: 48x64 pixels"):
        decode_rgb(heic, max_pixels=3000)
    with pytest.raises(ImageError, match="not a readable image"):
        decode_rgb(heic[: len(heic) // 2], min_side=1)


def test_raw_photos_are_refused_by_name():
    assert refused_by_name("a/IMG_0001.DNG") == "DNG raw photos are not supported: export a JPEG"
    assert refused_by_name("x.zip:b.nef") == "NEF raw photos are not supported: export a JPEG"
    assert refused_by_name("dng") is refused_by_name("a.jpg") is None


def test_resize_and_load_cell_shapes():
    img = np.random.default_rng(0).integers(0, 255, (130, 97, 3), np.uint8)
    assert resize(img, 64).shape == (64, 64, 3)
    assert resize(img[:20, :20], 64).shape == (64, 64, 3)
    assert load_cell(encode_png(img), 32).shape == (32, 32, 3)
