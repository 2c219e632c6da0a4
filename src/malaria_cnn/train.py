"""Train a network preset on the train split, watching the val split."""

from __future__ import annotations

import sys

import numpy as np

from malaria_cnn import data, models
from malaria_cnn.params import Params
from malaria_cnn.runtime import keras, seed_everything


def train(p: Params, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]) -> tuple[keras.Model, dict]:
    """Build, compile and fit the network; return it with its per-epoch history."""
    seed_everything(p.train.seed)
    (x_train, y_train), (x_val, y_val) = train, val
    model = models.build(p.model, image_size=x_train.shape[1])
    models.compile_model(model, p.train)
    history = model.fit(
        data.dataset(x_train, y_train, p.train.batch_size, shuffle_seed=p.train.seed),
        validation_data=data.dataset(x_val, y_val, p.train.batch_size),
        epochs=p.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return model, history.history


def history_rows(history: dict) -> tuple[list[str], list[list]]:
    """The per-epoch history as a CSV header and rows, epochs counted from 1."""
    keys = list(history)
    epochs = len(next(iter(history.values()))) if history else 0
    rows = [[e + 1] + [round(float(history[k][e]), 6) for k in keys] for e in range(epochs)]
    return ["epoch", *keys], rows
