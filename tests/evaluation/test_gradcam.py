import numpy as np
import pytest

from malaria_cnn.core.params import CompactNetParams, ModelParams
from malaria_cnn.evaluation import gradcam
from malaria_cnn.training import networks
from malaria_cnn.training.runtime import keras


def _brightness_model(size=32):
    """Logit(Parasitized) = +mean brightness, logit(Uninfected) = -mean brightness, through one
    1x1 convolution that sums the channels: the evidence for Parasitized is wherever it is bright."""
    inputs = keras.Input((size, size, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer="ones", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, out)
    model.get_layer("probabilities").set_weights([np.array([[-1.0, 1.0]]), np.zeros(2)])
    return model


def test_heat_map_points_at_the_evidence():
    model = _brightness_model()
    x = np.zeros((2, 32, 32, 3), np.uint8)
    x[0, 4:8, 20:24] = 255  # a bright spot top right
    x[1, 24:28, 2:6] = 255  # bottom left
    maps = gradcam.heatmaps(model, x, np.array([1, 1]))
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    for m, (row, col) in zip(maps, [(5.5, 21.5), (25.5, 3.5)]):
        peak = np.unravel_index(np.argmax(m), m.shape)
        assert abs(peak[0] - row) <= 2 and abs(peak[1] - col) <= 2
    # Brightness is evidence against Uninfected: nothing to show for that class.
    assert gradcam.heatmaps(model, x, np.array([0, 0])).max() == 0


@pytest.mark.parametrize("preset", ["seed", "compact"])
def test_presets_have_a_spatial_layer_to_explain(preset):
    cfg = ModelParams(preset=preset, compact=CompactNetParams(widths=(8, 16)))
    model = networks.build(cfg, image_size=32)
    layer = gradcam.last_feature_layer(model)
    assert len(layer.output.shape) == 4 and layer.output.shape[1] > 1
    x = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    maps = gradcam.heatmaps(model, x, np.array([0, 1, 1]))
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()


def test_examples_pick_the_most_confident_cells_of_each_outcome():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    prob = np.array([0.99, 0.7, 0.2, 0.1, 0.45, 0.8, 0.01, 0.3])
    got = gradcam.examples(y, prob, 0.4, per_outcome=2)
    assert got == {"TP": [0, 1], "FP": [5, 4], "FN": [6, 2], "TN": [3, 7]}


def test_sheet_has_a_row_per_outcome():
    model = _brightness_model(16)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    y, prob = np.array([1, 1, 0, 0, 1, 0, 1, 0]), rng.random(8)
    img = gradcam.gradcam_sheet(model, x, y, prob, np.array(list("abcdefgh")), 0.5, per_outcome=2)
    assert img.shape[0] > 4 * 128 and img.dtype == np.uint8
    overlay = gradcam.overlay(x[0], np.ones((16, 16)))
    assert overlay.shape == x[0].shape and overlay.dtype == np.uint8


def test_a_network_trained_in_mixed_precision_can_be_explained():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = np.random.default_rng(2).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    maps = gradcam.heatmaps(model, x, np.array([1, 0]))
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()


def test_an_ensemble_is_explained_by_its_members_maps():
    from malaria_cnn.training import ensemble

    model = ensemble.average([_brightness_model(), _brightness_model()])
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, 4:8, 20:24] = 255
    maps = gradcam.heatmaps(model, x, np.array([1]))
    peak = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert maps.max() == pytest.approx(1) and abs(peak[0] - 5.5) <= 2 and abs(peak[1] - 21.5) <= 2


def test_sheet_shows_each_outcomes_crops_beside_their_overlays():
    from malaria_cnn.evaluation import gallery

    model = _brightness_model(16)
    x = np.zeros((4, 16, 16, 3), np.uint8)
    x[0, 2:6, 2:6] = 250  # TP: a bright spot, called parasitized
    x[1, 10:14, 10:14] = 200  # FP
    x[2, 1:3, 12:15] = 90  # FN
    x[3] = 5  # TN
    y, prob = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.2, 0.1])
    sheet = gradcam.gradcam_sheet(model, x, y, prob, np.array(list("abcd")), 0.5, per_outcome=1)
    left = 44 + gallery._PAD  # the row label, then the first tile
    for row, i in enumerate([0, 1, 2, 3]):  # TP, FP, FN, TN: one row each, in that order
        top = 30 + row * (gallery.TILE + gallery._CAPTION + gallery._PAD)
        crop = sheet[top:top + gallery.TILE, left:left + gallery.TILE]
        assert np.array_equal(crop, gallery._tile(x[i])), row  # the crop itself, enlarged
        second = left + gallery.TILE + gallery._PAD
        over = sheet[top:top + gallery.TILE, second:second + gallery.TILE]
        assert np.array_equal(over, gallery._tile(gradcam.overlay(x[i], gradcam.heatmaps(model, x[i:i + 1],
                                                                                       np.array([prob[i] >= 0.5]).astype(int))[0])))
    spot = sheet[30 + 2 * 128 // 16: 30 + 6 * 128 // 16, second + 2 * 8: second + 6 * 8]
    assert spot[..., 0].mean() > spot[..., 2].mean()  # the TP's bright spot is where the overlay is red
