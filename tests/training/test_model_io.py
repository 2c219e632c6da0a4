"""Saving models byte-stably and loading them safely."""

import subprocess
import sys

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import CompactNetParams, ModelParams, SeedNetParams
from malaria_cnn.training import model_io, networks
from malaria_cnn.training.runtime import keras

TINY = ModelParams(preset="seed", seed=SeedNetParams(filters=4, dense_units=(8,)))


def test_saved_bytes_depend_only_on_the_model(tmp_path):
    model = networks.build(TINY, image_size=16)
    model_io.save(model, tmp_path / "a.keras")
    model_io.save(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    loaded = model_io.load(tmp_path / "a.keras")
    x = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert np.allclose(model_io.parasitized_probability(loaded, x, 2), model.predict(x, verbose=0)[:, 1], atol=1e-6)


PLAIN_KERAS_SCRIPT = """
import sys
sys.modules["malaria_cnn"] = None  # an editable install is importable even in isolated mode
try:
    import malaria_cnn
except ImportError:
    pass
else:
    raise SystemExit("malaria_cnn is importable")
import numpy as np, keras
x = np.load("x.npy")
for name in sys.argv[1:]:
    model = keras.models.load_model(name)
    np.save(name + ".npy", model.predict(x, verbose=0))
    print(name, model.inputs[0].name)
"""


def _saved_and_run_by_plain_keras(x: np.ndarray, stain_mode: str, tmp_path) -> dict:
    """A network and an ensemble of two taking crops prepared by `stain_mode`, saved by model_io.save and
    run on x by Keras alone in a process that cannot import this package (its outputs in NAME.npy):
    {file name: model}. Each file's input is `rgb_uint8`, raw crops."""
    from malaria_cnn.data import stain
    from malaria_cnn.training import ensemble

    np.save(tmp_path / "x.npy", x)
    params = ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16)))
    members = [networks.build(params, image_size=24, stain_mode=stain_mode) for _ in range(2)]
    for member in members:
        member(x, training=True)  # the fused kernel moves the moving statistics off their start
    models = {"one.keras": members[0], "ensemble.keras": ensemble.average(members)}
    for name, model in models.items():
        model_io.save(model, tmp_path / name)
    result = subprocess.run([sys.executable, "-I", "-c", PLAIN_KERAS_SCRIPT, *models], check=False,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [word for name in models for word in (name, stain.input_name("none"))]
    return models


def test_a_saved_model_loads_and_predicts_with_plain_keras(tmp_path):
    """The shipped file names no class of this package: Keras alone, in a process that cannot import it,
    loads a network and an ensemble and predicts as the trained models do; so does model_io.load."""
    x = np.random.default_rng(2).integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    models = _saved_and_run_by_plain_keras(x, "none", tmp_path)
    for name, model in models.items():
        expected = model.predict(x, verbose=0)
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-6)
        loaded = model_io.load(tmp_path / name)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
        assert model_io.stain_mode(loaded) == "none" and model_io.image_size(loaded) == 24
        model_io.save(loaded, tmp_path / f"again_{name}")
        assert (tmp_path / f"again_{name}").read_bytes() == (tmp_path / name).read_bytes()


def test_a_model_of_standardised_crops_is_saved_to_take_raw_crops_with_plain_keras(tmp_path):
    """Saved, a network trained on standardised crops carries the graph standardisation in front: Keras alone,
    without this package, feeds it raw crops and gets the network's probabilities on numpy-standardised ones.
    model_io.load gives the network back; op nodes made earlier in the process do not change the bytes."""
    from malaria_cnn.data import stain
    from malaria_cnn.training import stain_graph

    x = np.random.default_rng(4).integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    x[:, :5] = 0
    models = _saved_and_run_by_plain_keras(x, "od", tmp_path)
    standardised = np.stack([stain.standardised(crop)[0] for crop in x])
    for name, model in models.items():
        expected = model.predict(standardised, verbose=0)
        assert np.abs(model.predict(x, verbose=0) - expected).max() > 1e-4  # raw crops differ to the network
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=1e-6)
        loaded = model_io.load(tmp_path / name)
        assert model_io.stain_mode(loaded) == "od" and loaded.name == model.name
        np.testing.assert_allclose(loaded.predict(standardised, verbose=0), expected, atol=1e-6)
        stain_graph.standardised(keras.Input((8, 8, 3), dtype="uint8"))  # more op nodes, named by count
        model_io.save(loaded, tmp_path / f"again_{name}")
        assert (tmp_path / f"again_{name}").read_bytes() == (tmp_path / name).read_bytes()


def test_a_file_that_is_not_a_model_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="run the train stage first"):
        model_io.load(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="is not a readable Keras model"):
        model_io.load(tmp_path / "junk.keras")


def test_a_corrupt_model_file_is_one_clear_error(tmp_path):
    good = tmp_path / "model.keras"
    model_io.save(networks.build(TINY, image_size=16), good)
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="is not a readable Keras model") as info:
        model_io.load(cut)
    assert "\n" not in str(info.value)


def test_a_keras_model_that_is_not_ours_is_refused(tmp_path):
    inputs = keras.Input((10,))
    other = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    other.save(tmp_path / "other.keras")
    with pytest.raises(UserError, match="not a malaria-cnn one"):
        model_io.load(tmp_path / "other.keras")


def test_safe_mode_refuses_code_in_the_file(tmp_path):
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    x = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32") / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    risky = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="probabilities")(x))
    risky.save(tmp_path / "lambda.keras")
    with pytest.raises(UserError, match="is not a readable Keras model"):
        model_io.load(tmp_path / "lambda.keras")


@pytest.mark.parametrize("mode", ["od", "none"])
def test_a_saved_model_and_its_ensemble_say_how_their_crops_are_prepared(tmp_path, mode):
    from malaria_cnn.training import ensemble

    members = [networks.build(TINY, image_size=16, stain_mode=mode) for _ in range(2)]
    model_io.save(ensemble.average(members), tmp_path / "m.keras")
    assert model_io.stain_mode(model_io.load(tmp_path / "m.keras")) == mode
    model_io.save(members[0], tmp_path / "one.keras")
    assert model_io.stain_mode(model_io.load(tmp_path / "one.keras")) == mode
