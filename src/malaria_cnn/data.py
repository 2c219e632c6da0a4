"""The arrays of one split, and tf.data pipelines that feed them to the network as uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malaria_cnn import cells, split
from malaria_cnn.errors import UserError
from malaria_cnn.labels import CLASS_NAMES
from malaria_cnn.runtime import tf


def load_splits(npz_path: str | Path, splits_path: str | Path, *names: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (x, y)} for each split named."""
    arrays = cells.load(npz_path)
    assigned = split.read(splits_path, arrays["filename"])
    out = {}
    for name in names:
        sel = assigned == name
        if not sel.any():
            raise UserError(f"the {name} split is empty: use more cells or other split sizes")
        out[name] = arrays["x"][sel], arrays["y"][sel]
    return out


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Batches of (uint8 images, one-hot labels); shuffled each epoch when a seed is given."""
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, len(CLASS_NAMES))))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
