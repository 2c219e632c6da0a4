import numpy as np

from malaria_cnn.params import ModelParams, Params, TrainParams
from malaria_cnn.train import history_rows, train

TINY = Params(epochs=2, model=ModelParams(filters=4, dense_units=(8,)), train=TrainParams(batch_size=8, seed=3))


def _data(n=32, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = (np.arange(n) % 2).astype(np.uint8)
    x[y == 1, 4:8, 4:8] = 0  # a dark patch marks the positives
    return x, y


def test_same_params_same_weights_and_history():
    train_set, val_set = _data(), _data(16, seed=1)
    m1, h1 = train(TINY, train_set, val_set)
    m2, h2 = train(TINY, train_set, val_set)
    assert h1 == h2
    assert all(np.array_equal(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))
    assert set(h1) >= {"loss", "accuracy", "val_loss", "val_accuracy"} and len(h1["loss"]) == 2


def test_history_rows_count_epochs_from_one():
    header, rows = history_rows({"loss": [0.5, 0.25], "val_loss": [0.6, 0.4]})
    assert header == ["epoch", "loss", "val_loss"]
    assert rows == [[1, 0.5, 0.6], [2, 0.25, 0.4]]
