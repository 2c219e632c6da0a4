"""The graph standardisation (Keras ops) gives the numpy one's pixels and densities, on synthetic and real cells,
and runs in TFLite alone."""

import zipfile

import numpy as np
import pytest

from malaria_cnn.data import images, stain
from malaria_cnn.training import stain_graph


def numpy_path(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [stain.standardised(crop) for crop in raw]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def assert_same(raw: np.ndarray) -> None:
    expected, od = numpy_path(raw)
    got = stain_graph.standardised(raw).numpy()
    assert got.dtype == np.uint8 and got.shape == raw.shape
    assert np.array_equal(got, expected), f"{(got != expected).any(axis=(1, 2, 3)).sum()} crops differ"
    np.testing.assert_allclose(stain_graph.density(raw).numpy(), od, atol=1e-5, equal_nan=True)


def test_synthetic_cells_standardise_as_numpy_does(small_cells):
    raw = np.stack([images.load_cell(c.read(), 40, stain_mode="none") for c in small_cells])
    assert_same(raw)


def test_edge_cases_standardise_as_numpy_does():
    rng = np.random.default_rng(3)
    black = np.zeros((12, 12, 3), np.uint8)
    speck = black.copy()
    speck[5, 5] = (200, 120, 140)  # a cell with no pixel clear of black: its inside is its core
    line = black.copy()
    line[3, :] = (90, 40, 250)
    noise = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)  # black pixels inside, no background
    pale, dark = np.full((12, 12, 3), 254, np.uint8), np.full((12, 12, 3), 11, np.uint8)  # clamped scale
    even = black.copy()
    even[2:6, 2:8] = rng.integers(20, 250, (4, 6, 3))  # an even number of core pixels: two middle values
    split = black.copy()
    split[2:10, 2:6], split[2:10, 6:10] = (30, 60, 90), (200, 150, 20)  # two middle values far apart
    assert_same(np.stack([black, speck, line, noise, pale, dark, even, split]))
    assert np.isnan(stain_graph.density(black[None]).numpy()).all()


def test_dev_crops_standardise_as_numpy_does(nih_dev_zip):
    with zipfile.ZipFile(nih_dev_zip) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")][::17]
        raw = np.stack([images.load_cell(zf.read(n), 64, stain_mode="none") for n in names])
    assert len(raw) == 501
    assert_same(raw)


@pytest.mark.parametrize("size", [24, 64])
def test_tflite_runs_it_alone(size):
    from malaria_cnn.release import export
    from malaria_cnn.training.runtime import tf

    # the converter's default target is TFLite's builtin ops: it fails on any other op
    fn = tf.function(stain_graph.standardised, input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
    blob = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn).convert()
    lite = export.LiteModel(blob)
    raw = np.random.default_rng(size).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    raw[:, : size // 3] = 0
    assert np.array_equal(lite.probabilities(raw), numpy_path(raw)[0])
