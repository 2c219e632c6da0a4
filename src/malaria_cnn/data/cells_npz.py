"""The preprocessed cells file (data/processed/cells.npz): uint8 images with their labels, slides and names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.errors import UserError

# x (n, s, s, 3) RGB uint8; y (n,) label index; slide; archive member; density (n, 3): each cell's median optical
# density per channel before stain standardisation (data/stain.py); source: its data source's name (the manifest's)
KEYS = ("x", "y", "slide", "filename", "density", "source")


def save(dest: str | Path, **arrays: np.ndarray) -> None:
    """Write the arrays (no pickles) atomically."""
    with atomic.atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load(path: str | Path, keys: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    """Read the arrays named by `keys` (only those are loaded into memory)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the preprocess stage first (dvc repro)") from None
    except KeyError as exc:
        raise UserError(f"{path} holds no {exc}: it was made by an older version; rerun preprocess (dvc repro)") from None
