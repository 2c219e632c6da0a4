"""The shipped ensemble: one model, the mean of its members' probabilities, saved and loaded like any other."""

import numpy as np

from malaria_cnn.core.params import CompactNetParams, ModelParams
from malaria_cnn.training import ensemble, model_io, networks

CFG = ModelParams(compact=CompactNetParams(widths=(8, 16)))


def test_the_ensemble_is_the_mean_of_its_members(tmp_path):
    members = [networks.build(CFG, 32) for _ in range(3)]
    for i, m in enumerate(members):  # members that differ, so that a wrong mean shows
        m.set_weights([w + 0.05 * (i + 1) for w in m.get_weights()])
    model = ensemble.average(members)
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    each = np.stack([m.predict(x, verbose=0) for m in members])
    assert np.ptp(each[:, :, 1], axis=0).max() > 1e-3
    assert np.allclose(model.predict(x, verbose=0), each.mean(axis=0), atol=1e-6)

    model_io.save(model, tmp_path / "a.keras")
    model_io.save(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    loaded = model_io.load(tmp_path / "a.keras")  # safe mode: no code in the file
    assert np.allclose(model_io.parasitized_probability(loaded, x, 4), each.mean(axis=0)[:, 1], atol=1e-6)
    assert [m.name for m in ensemble.members(loaded)] == ["member_0", "member_1", "member_2"]
    assert model_io.image_size(loaded) == 32


def test_one_member_is_the_model_itself():
    model = networks.build(CFG, 32)
    assert ensemble.average([model]) is model and ensemble.members(model) == [model]
