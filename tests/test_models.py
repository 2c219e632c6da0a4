import numpy as np
import pytest

from malaria_cnn import models
from malaria_cnn.errors import UserError
from malaria_cnn.params import CompactNetParams, ModelParams, SeedNetParams
from malaria_cnn.runtime import keras

TINY = ModelParams(preset="seed", seed=SeedNetParams(filters=4, dense_units=(8,)))


def _trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_seed_preset_is_the_tutorials_network():
    model = models.build(ModelParams(preset="seed"), image_size=64)
    assert model.count_params() == 4_340_130
    assert _trainable(model) == 4_338_466
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        "Conv2D", "MaxPooling2D", "BatchNormalization", "Dropout",
        "Conv2D", "MaxPooling2D", "BatchNormalization", "Dropout",
        "Flatten",
        "Dense", "BatchNormalization", "Dropout",
        "Dense", "BatchNormalization", "Dropout",
        "Dense",
    ]


def test_compact_preset_is_small_and_pools_globally():
    model = models.build(ModelParams(preset="compact"), image_size=64)
    assert model.count_params() == 80_930 < 500_000
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "GlobalAveragePooling2D" in kinds and "Flatten" not in kinds
    assert kinds.count("SeparableConv2D") == 6
    narrow = models.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=32)
    assert narrow.count_params() < 2_000


def test_takes_rgb_uint8_and_returns_probabilities():
    model = models.build(TINY, image_size=16)
    assert model.input.dtype == "uint8"
    x = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    out = model.predict(x, verbose=0)
    assert out.shape == (5, 2) and np.allclose(out.sum(axis=1), 1, atol=1e-5) and (out >= 0).all()


def test_scaling_is_inside_the_model():
    model = models.build(TINY, image_size=16)
    rescale = model.layers[1]
    assert float(rescale(np.full((1, 2, 2, 3), 255, np.uint8)).numpy().max()) == pytest.approx(1.0)


def test_saved_bytes_depend_only_on_the_model(tmp_path):
    model = models.build(TINY, image_size=16)
    models.save(model, tmp_path / "a.keras")
    models.save(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    loaded = models.load(tmp_path / "a.keras")
    x = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert np.allclose(models.parasitized_probability(loaded, x, 2), model.predict(x, verbose=0)[:, 1], atol=1e-6)


def test_a_file_that_is_not_a_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="run the train stage first"):
        models.load(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="is not a readable Keras model"):
        models.load(tmp_path / "junk.keras")


def test_a_corrupt_model_file_is_one_clear_error(tmp_path):
    good = tmp_path / "model.keras"
    models.save(models.build(TINY, image_size=16), good)
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="is not a readable Keras model") as info:
        models.load(cut)
    assert "\n" not in str(info.value)


def test_a_keras_model_that_is_not_ours_is_refused(tmp_path):
    inputs = keras.Input((10,))
    other = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    other.save(tmp_path / "other.keras")
    with pytest.raises(UserError, match="not a malaria-cnn one"):
        models.load(tmp_path / "other.keras")


def test_safe_mode_refuses_code_in_the_file(tmp_path):
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    x = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32") / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    risky = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(x))
    risky.save(tmp_path / "lambda.keras")
    with pytest.raises(UserError, match="is not a readable Keras model"):
        models.load(tmp_path / "lambda.keras")
