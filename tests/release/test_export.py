import numpy as np
import pytest

from malaria_cnn.core.params import CompactNetParams, ModelParams
from malaria_cnn.release import export
from malaria_cnn.training import model_io, networks

SIZE = 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=SIZE)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (64, SIZE, SIZE, 3), dtype=np.uint8)
    export.saved_model(model, tmp / "saved")
    return model, x, {
        "float32": export.tflite(tmp / "saved"),
        "int8": export.tflite(tmp / "saved", export.representative_crops(x, 32)),
    }


def test_float32_tflite_matches_keras(exported):
    model, x, blobs = exported
    keras_p = model_io.parasitized_probability(model, x, 16)
    lite = export.LiteModel(blobs["float32"])
    lite_p = lite.parasitized_probability(x, 16)
    assert lite_p.shape == keras_p.shape and np.abs(lite_p - keras_p).max() < 1e-4
    assert lite.input["dtype"] == np.uint8  # takes the same uint8 crops as the Keras model
    assert np.allclose(lite.probabilities(x[:5]).sum(axis=1), 1, atol=1e-5)


def test_int8_tflite_computes_in_int8_and_stays_close(exported):
    model, x, blobs = exported
    lite = export.LiteModel(blobs["int8"])
    conv = [d["dtype"] for d in lite.interpreter.get_tensor_details() if "conv2d" in d["name"]]
    assert conv and set(conv) <= {np.int8, np.int32}  # weights int8, biases int32: no float left
    lite_p = export.LiteModel(blobs["int8"]).parasitized_probability(x, 16)
    keras_p = model_io.parasitized_probability(model, x, 16)
    assert np.abs(lite_p - keras_p).max() < 0.1


def test_parity_counts_agreement_and_the_largest_difference():
    ref, other = np.array([0.1, 0.6, 0.9, 0.4]), np.array([0.2, 0.4, 0.95, 0.45])
    assert export.parity(ref, other, 0.5) == {"agreement": 0.75, "max_probability_difference": 0.2}


def test_representative_crops_spread_over_the_split():
    x = np.arange(100)[:, None]
    assert export.representative_crops(x, 5)[:, 0].tolist() == [0, 25, 50, 74, 99]
    assert len(export.representative_crops(x, 500)) == 100


def test_int8_below_the_bound_is_marked_with_its_reason():
    good, bad = {"agreement": 0.995}, {"agreement": 0.9}
    assert export.check_int8(good, 0.99) is None and good["passed"] is True
    reason = export.check_int8(bad, 0.99)
    assert bad["passed"] is False and reason.startswith("the int8 model calls only 90.00% of the test cells")
