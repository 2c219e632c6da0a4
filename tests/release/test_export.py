import numpy as np
import pytest

from malaria_cnn.core.params import CompactNetParams, ModelParams
from malaria_cnn.data import stain
from malaria_cnn.release import export
from malaria_cnn.training import model_io, networks

SIZE = 24


def raw_cells(n: int, seed: int = 0) -> np.ndarray:
    """Random crops with a black background around a noisy disc: raw crops, their stain as it came."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, SIZE, SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    x[:, (yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 > (SIZE / 2.5) ** 2] = 0
    return x


def standardised(x: np.ndarray) -> np.ndarray:
    return np.stack([stain.standardised(crop)[0] for crop in x])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8, 16))), image_size=SIZE)
    x = raw_cells(64)
    export.saved_model(model, tmp / "saved")
    return model, x, tmp / "saved", {
        "float32": export.tflite(tmp / "saved"),
        "int8": export.tflite(tmp / "saved", export.representative_crops(x, 32)),
    }


def test_float32_tflite_on_raw_crops_matches_keras_on_standardised_ones(exported):
    model, x, _, blobs = exported
    keras_p = model_io.parasitized_probability(model, standardised(x), 16)
    lite = export.LiteModel(blobs["float32"])
    lite_p = lite.parasitized_probability(x, 16)
    assert lite_p.shape == keras_p.shape and np.abs(lite_p - keras_p).max() < 1e-4
    unstandardised = np.abs(lite_p - model_io.parasitized_probability(model, x, 16)).max()
    assert unstandardised > 10 * np.abs(lite_p - keras_p).max()  # the standardisation ran (an untrained net: small)
    assert lite.input["dtype"] == np.uint8 and lite.input["name"] == f"serving_default_{export.INPUT}:0"
    assert np.allclose(lite.probabilities(x[:5]).sum(axis=1), 1, atol=1e-5)


def test_the_saved_model_file_takes_raw_crops_with_plain_keras(exported, tmp_path):
    model, x, _, _ = exported
    model_io.save(model, tmp_path / "model.keras")
    keras_p = model_io.parasitized_probability(model, standardised(x), 16)
    assert np.abs(export.KerasFile(tmp_path / "model.keras").parasitized_probability(x, 16) - keras_p).max() < 1e-5


def test_saved_model_takes_raw_crops(exported):
    model, x, saved, _ = exported
    copy = export.SavedModelCopy(saved)
    keras_p = model_io.parasitized_probability(model, standardised(x), 16)
    assert np.abs(copy.parasitized_probability(x, 16) - keras_p).max() < 1e-5


def test_a_model_of_crops_as_decoded_is_exported_without_standardisation(tmp_path):
    model = networks.build(ModelParams(preset="compact", compact=CompactNetParams(widths=(8,))), SIZE, "none")
    export.saved_model(model, tmp_path / "saved")
    x = raw_cells(8)
    lite_p = export.LiteModel(export.tflite(tmp_path / "saved")).parasitized_probability(x, 8)
    assert np.abs(lite_p - model_io.parasitized_probability(model, x, 8)).max() < 1e-4


def test_int8_tflite_quantises_the_network_and_keeps_the_standardisation_in_float(exported):
    model, x, _, blobs = exported
    lite = export.LiteModel(blobs["int8"])
    details = lite.interpreter.get_tensor_details()
    conv = [d["dtype"] for d in details if "conv2d" in d["name"]]
    assert conv and set(conv) <= {np.int8, np.int32}  # weights int8, biases int32: no float left
    stain_ops = {d["dtype"] for d in details if d["name"].startswith(export.STAIN_SCOPE + "/")}
    assert stain_ops and np.int8 not in stain_ops
    assert lite.input["dtype"] == np.uint8 and lite.output["dtype"] == np.float32
    lite_p = lite.parasitized_probability(x, 16)
    keras_p = model_io.parasitized_probability(model, standardised(x), 16)
    assert np.abs(lite_p - keras_p).max() < 0.1


def test_tflite_files_are_byte_reproducible(exported):
    _, x, saved, blobs = exported
    assert export.tflite(saved) == blobs["float32"]
    assert export.tflite(saved, export.representative_crops(x, 32)) == blobs["int8"]


def test_raw_crops_are_read_from_the_archive_resized_and_not_standardised(tmp_path, small_cells):
    import zipfile

    from malaria_cnn.data import images

    with zipfile.ZipFile(tmp_path / "raw.zip", "w") as zf:
        for cell in small_cells[:3]:
            zf.writestr(cell.member, cell.read())
    got = export.raw_crops(tmp_path / "raw.zip", [c.member for c in small_cells[:3]][::-1], 40)
    expected = [images.resize(images.decode_rgb(c.read()), 40) for c in small_cells[:3]][::-1]
    assert got.shape == (3, 40, 40, 3) and np.array_equal(got, np.stack(expected))


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
