"""Fine-tuning (train.init_from): every model trained starts from a saved model's network and weights, and trains
for train.finetune.epochs at train.finetune.learning_rate; a model that cannot be started from is one line."""

import dataclasses
import json

import numpy as np
import pytest

from malaria_cnn.core.atomic import file_sha256
from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import FinetuneParams, ModelParams, Params, PreprocessParams, SeedNetParams, TrainParams
from malaria_cnn.training import batch_norm, cross_validation, distribute, ensemble, finetune, model_io, networks
from malaria_cnn.training.runtime import keras
from malaria_cnn.training.train import fingerprint, train

from conftest import dark_patch_cells

NET = ModelParams(preset="seed", seed=SeedNetParams(filters=4, dense_units=(8,)))
TINY = Params(epochs=4, model=NET, train=TrainParams(batch_size=8, seed=3, learning_rate=0.01, augment=False,
                                                     class_weights=False, early_stopping=0, reduce_lr=0))


_data = dark_patch_cells


def _saved(path, size=16, stain_mode="od", seed=0):
    """A network with weights of its own (not a fresh one's) and moved BatchNorm statistics, saved as the pipeline
    saves a model; returned too."""
    model = networks.build(NET, image_size=size, stain_mode=stain_mode)
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    model(_data(size=size)[0], training=True)  # the fused kernel moves the moving statistics off their start
    model_io.save(model, path)
    return model_io.load(path)


def _from(path, **finetune_knobs):
    ft = FinetuneParams(**{"learning_rate": 0.003, "epochs": 2, **finetune_knobs})
    return dataclasses.replace(TINY, train=dataclasses.replace(TINY.train, init_from=str(path), finetune=ft))


class AtStart(keras.callbacks.Callback):
    """What the model is when fit begins, before any step."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()
        self.predictions = keras.ops.convert_to_numpy(self.model(self.x, training=False))
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def test_fine_tuning_starts_from_the_saved_model_and_trains_for_finetune_epochs_at_its_rate(tmp_path):
    saved = _saved(tmp_path / "nih.keras")
    x, y = _data()
    p = _from(tmp_path / "nih.keras")
    p = dataclasses.replace(p, model=dataclasses.replace(NET, bn_momentum=0.5, seed=SeedNetParams(filters=9)))
    start = AtStart(x[:8])
    model, history = train(p, (x, y), _data(16, seed=1), callbacks=[start])

    assert all(np.array_equal(a, b) for a, b in zip(start.weights, saved.get_weights()))
    np.testing.assert_allclose(start.predictions, saved.predict(x[:8], verbose=0), atol=1e-6)
    assert start.learning_rate == pytest.approx(0.003)  # finetune.learning_rate, not train.learning_rate's 0.01
    assert len(history["loss"]) == 2  # finetune.epochs, not epochs' 4
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.003)
    # the saved model's network (model.seed.filters: 9 is not used), trained: its weights moved
    assert [w.shape for w in model.get_weights()] == [w.shape for w in saved.get_weights()]
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), saved.get_weights()))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(n) is batch_norm.BatchNorm and n.momentum == 0.5 for n in norms)  # as from scratch


def test_without_init_from_training_is_unchanged():
    p = dataclasses.replace(TINY, epochs=1, train=dataclasses.replace(TINY.train, finetune=FinetuneParams(epochs=3)))
    start = AtStart(_data()[0][:4])
    _, history = train(p, _data(), _data(16, seed=1), callbacks=[start])
    assert len(history["loss"]) == 1 and start.learning_rate == pytest.approx(0.01)
    assert finetune.effective(p) is p


def test_a_fold_records_the_model_it_started_from(tmp_path):
    _saved(tmp_path / "nih.keras")
    p = _from(tmp_path / "nih.keras", epochs=1)
    (x, y), (hx, hy) = _data(), _data(12, seed=1)
    held = {"x": hx, "y": hy, "filename": np.array([f"c{i}.png" for i in range(12)]), "slide": np.array(["s1"] * 12)}
    line = cross_validation.fit_fold(p, 0, {"x": x, "y": y}, held, tmp_path / "fold", tmp_path / "ckpt",
                                     distribute.start(p.train))
    record = json.loads((tmp_path / "fold" / cross_validation.HISTORY_FILE).read_text())
    sha256 = file_sha256(tmp_path / "nih.keras")
    assert record["init_from"] == {"path": str(tmp_path / "nih.keras"), "sha256": sha256}
    assert record["epochs"] == 1
    assert line.startswith(f"train@0: fine-tuned from {tmp_path / 'nih.keras'} (sha256 {sha256[:12]}), 32 cells -> 1 ")


def test_the_refit_fine_tunes_for_the_folds_median_best_epochs(tmp_path, monkeypatch):
    _saved(tmp_path / "nih.keras")
    folds = []
    for k, best in enumerate((1, 1, 3)):
        folds.append(tmp_path / str(k))
        folds[-1].mkdir()
        (folds[-1] / cross_validation.HISTORY_FILE).write_text(json.dumps({"best_epoch": best}))
    histories = []

    def recorded(*args, **kwargs):
        model, history = train(*args, **kwargs)
        histories.append(history)
        return model, history

    monkeypatch.setattr(cross_validation, "train", recorded)
    x, y = _data()
    p = _from(tmp_path / "nih.keras", epochs=4)
    _, line = cross_validation.refit(p, folds, [{"x": x, "y": y, "filename": np.arange(32).astype(str)}], set(),
                                     distribute.start(p.train))
    assert len(histories[0]["loss"]) == 1  # the folds' median best, not finetune.epochs' 4
    assert line.startswith(f"final: refit, fine-tuned from {tmp_path / 'nih.keras'}") and "for 1 epochs" in line


def test_an_ensemble_is_fine_tuned_whole_and_its_networks_stay_reachable(tmp_path):
    from malaria_cnn.evaluation import gradcam

    members = [_saved(tmp_path / f"m{i}.keras", seed=i) for i in range(2)]
    model_io.save(ensemble.average(members), tmp_path / "ensemble.keras")
    saved = model_io.load(tmp_path / "ensemble.keras")
    x, y = _data()
    start = AtStart(x[:8])
    tuned, _ = train(_from(tmp_path / "ensemble.keras", epochs=1), (x, y), _data(16, seed=1), callbacks=[start])
    np.testing.assert_allclose(start.predictions, saved.predict(x[:8], verbose=0), atol=1e-6)
    model_io.save(tuned, tmp_path / "fold.keras")
    shipped = ensemble.average([model_io.load(tmp_path / "fold.keras")] * 2)  # final's ensemble of fine-tuned folds
    assert len(ensemble.members(shipped)) == 4
    assert gradcam.heatmaps(shipped, x[:3], np.array([0, 1, 1])).shape == (3, 16, 16)


def test_a_fine_tuned_ensemble_resumed_from_its_checkpoint_ends_as_if_never_stopped(tmp_path, monkeypatch, capsys):
    from malaria_cnn.training import train as training

    model_io.save(ensemble.average([_saved(tmp_path / f"m{i}.keras", seed=i) for i in range(2)]), tmp_path / "e.keras")
    p, data, val = _from(tmp_path / "e.keras", epochs=3), _data(), _data(16, seed=1)
    whole, _ = train(p, data, val)
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0)
    with monkeypatch.context() as kept:
        kept.setattr(training.shutil, "rmtree", lambda *a, **k: None)  # the checkpoint outlives the run, as after a kill
        train(finetune.with_epochs(p, 2), data, val, checkpoints=tmp_path / "ckpt")
    capsys.readouterr()
    resumed, history = train(p, data, val, checkpoints=tmp_path / "ckpt")  # finetune.epochs 3 now: it goes on
    assert "resuming after epoch 2" in capsys.readouterr().err
    assert len(history["loss"]) == 3 and not (tmp_path / "ckpt").exists()
    # the same weights: the dropout layers inside the ensemble's networks drew as they would have
    assert all(np.array_equal(a, b) for a, b in zip(whole.get_weights(), resumed.get_weights()))


def test_a_checkpoint_is_not_resumed_once_the_model_started_from_changed(tmp_path):
    _saved(tmp_path / "nih.keras", seed=0)
    p, data = _from(tmp_path / "nih.keras"), _data()
    before = fingerprint(p, data, None)
    _saved(tmp_path / "nih.keras", seed=1)  # another model under the same name
    assert fingerprint(p, data, None) != before


def test_the_copy_trains_in_this_runs_precision_with_its_head_in_float32(tmp_path):
    saved = _saved(tmp_path / "nih.keras")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        copy = finetune.trainable_copy(saved, NET)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    policies = {layer.name: layer.dtype_policy.name for layer in copy.layers if layer.weights}
    assert policies.pop("probabilities") == "float32" and set(policies.values()) == {"mixed_bfloat16"}


def _one_line_error(p, size=16):
    with pytest.raises(UserError) as info:
        finetune.load(p, image_size=size)
    assert "\n" not in str(info.value) and str(info.value).startswith("train.init_from: ")
    return str(info.value)


def test_a_model_that_cannot_be_started_from_is_one_line(tmp_path):
    missing = tmp_path / "missing.keras"
    assert _one_line_error(_from(missing)) == (f"train.init_from: {missing} not found: it should name a trained "
                                               "model.keras, from the project's root or absolute")
    with pytest.raises(UserError, match="not found: it should name a trained model.keras"):
        train(_from(missing), _data(), _data(16, seed=1))  # before any training

    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    assert "is not a readable Keras model" in _one_line_error(_from(tmp_path / "junk.keras"))

    _saved(tmp_path / "16.keras")
    assert _one_line_error(_from(tmp_path / "16.keras"), size=24) == (
        f"train.init_from: {tmp_path / '16.keras'} takes 16x16 crops, the crops are 24x24 (preprocess.image_size): "
        "set -S preprocess.image_size=16")
    with pytest.raises(UserError, match="takes 16x16 crops, the crops are 24x24"):
        train(_from(tmp_path / "16.keras"), _data(size=24), _data(16, size=24, seed=1))

    _saved(tmp_path / "none.keras", stain_mode="none")
    p = dataclasses.replace(_from(tmp_path / "none.keras"), preprocess=PreprocessParams(stain="od"))
    assert "trained on crops prepared with preprocess.stain none, these are prepared with od" in _one_line_error(p)

    inputs = keras.Input((16, 16, 3), dtype="uint8")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    sigmoid = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="probabilities")(pooled))
    sigmoid.save(tmp_path / "sigmoid.keras")  # one column, not this project's two probabilities
    assert "is a Keras model but not a malaria-cnn one" in _one_line_error(_from(tmp_path / "sigmoid.keras"))


def test_the_refit_count_goes_where_training_reads_it():
    p = _from("m.keras", epochs=7)
    assert finetune.effective(finetune.with_epochs(p, 2)).epochs == 2
    assert finetune.effective(p).epochs == 7 and finetune.effective(p).train.learning_rate == 0.003
    assert finetune.with_epochs(TINY, 2).epochs == 2 and finetune.effective(TINY) is TINY
