import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.screening import stain


def test_reinhard_moves_the_cell_colours_to_the_target_and_keeps_black_black():
    rng = np.random.default_rng(0)
    crop = np.zeros((30, 30, 3), np.uint8)
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    crop[mask] = np.clip(rng.normal((150, 190, 160), 12, (mask.sum(), 3)), 1, 255).astype(np.uint8)
    target = stain.stats(np.clip(rng.normal((200, 130, 150), 15, (2000, 3)), 0, 255).astype(np.uint8))
    out = stain.normalise(crop, mask, stain.stats(crop[mask]), target)
    moved = stain.stats(out[mask])
    assert np.allclose(moved.mean, target.mean, atol=1.5) and np.allclose(moved.std, target.std, rtol=0.15)
    assert (out[~mask] == 0).all() and (out[mask].max(axis=1) > 0).all()


def test_the_reference_comes_from_a_cells_npz(tmp_path):
    x = np.zeros((4, 8, 8, 3), np.uint8)
    x[:2, 2:6, 2:6] = (200, 120, 140)  # slide A: one colour
    x[2:, 2:6, 2:6] = (200, 120, 140)
    x[2:, 2:6, 2:4] = (160, 100, 150)  # slide B: two colours
    np.savez(tmp_path / "cells.npz", x=x, slide=np.array(["A", "A", "B", "B"]))
    ref = stain.reference(tmp_path / "cells.npz")
    a, b = stain.stats(x[0, 3:5, 3:5].reshape(-1, 3)), stain.stats(x[2, 3:5, 3:5].reshape(-1, 3))
    assert np.allclose(ref.mean, (a.mean + b.mean) / 2, atol=0.01)  # interior pixels, slides averaged
    assert np.allclose(ref.std, (a.std + b.std) / 2, atol=0.01)
    with pytest.raises(UserError, match="not found"):
        stain.reference(tmp_path / "missing.npz")
