"""The network presets."""

import numpy as np
import pytest

from malaria_cnn.core.params import CompactNetParams, ModelParams, SeedNetParams
from malaria_cnn.training import networks

TINY = ModelParams(preset="seed", seed=SeedNetParams(filters=4, dense_units=(8,)))


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_seed_preset_is_the_tutorials_network():
    model = networks.build(ModelParams(preset="seed"), image_size=64)
    assert model.count_params() == 4_340_130
    assert _trainable(model) == 4_338_466
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        "Conv2D", "MaxPooling2D", "BatchNorm", "Dropout",
        "Conv2D", "MaxPooling2D", "BatchNorm", "Dropout",
        "Flatten",
        "Dense", "BatchNorm", "Dropout",
        "Dense", "BatchNorm", "Dropout",
        "Dense",
    ]


def test_compact_preset_is_small_and_pools_globally():
    model = networks.build(ModelParams(preset="compact"), image_size=64)
    assert model.count_params() == 80_930 < 500_000
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "GlobalAveragePooling2D" in kinds and "Flatten" not in kinds
    assert kinds.count("SeparableConv2D") == 6
    narrow = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=32)
    assert narrow.count_params() < 2_000


def test_takes_rgb_uint8_and_returns_probabilities():
    model = networks.build(TINY, image_size=16)
    assert model.input.dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    out = model.predict(x, verbose=0)
    assert out.shape == (5, 2) and np.allclose(out.sum(axis=1), 1, atol=1e-5) and (out >= 0).all()


def test_scaling_is_inside_the_model():
    model = networks.build(TINY, image_size=16)
    rescale = model.layers[1]
    assert float(rescale(np.full((1, 2, 2, 3), 255, np.uint8)).numpy().max()) == pytest.approx(1.0)


def test_training_auc_is_the_roc_auc_of_p_parasitized():
    from sklearn.metrics import roc_auc_score

    from malaria_cnn.training.networks import ParasitizedAUC
    from malaria_cnn.training.runtime import keras

    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.5).astype(int)
    p = np.clip(np.where(y == 1, rng.beta(5, 2, 400), rng.beta(1, 3, 400)) ** 3, 0, 1)  # skewed: pooling differs
    onehot, probs = np.eye(2)[y], np.stack([1 - p, p], axis=1)
    ours = ParasitizedAUC(num_thresholds=1000)
    ours.update_state(onehot, probs)
    pooled = keras.metrics.AUC(num_thresholds=1000)
    pooled.update_state(onehot, probs)
    truth = roc_auc_score(y, p)
    assert float(ours.result()) == pytest.approx(truth, abs=2e-3)
    assert abs(float(pooled.result()) - truth) > 0.01  # what the stage reported before
