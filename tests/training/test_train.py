import dataclasses
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from malaria_cnn.core.params import (
    CompactNetParams,
    ModelParams,
    Params,
    SeedNetParams,
    TrainParams,
)
from malaria_cnn.training import batches
from malaria_cnn.training.runtime import keras
from malaria_cnn.training.train import CHANCE_LOSS, Plateau, class_weights, train

from conftest import ROOT, dark_patch_cells

TINY = Params(epochs=2, model=ModelParams(preset="seed", seed=SeedNetParams(filters=4, dense_units=(8,))),
              train=TrainParams(batch_size=8, seed=3, augment=False, class_weights=False, early_stopping=0, reduce_lr=0))


_data = dark_patch_cells


def test_same_params_same_weights_and_history():
    train_set, val_set = _data(), _data(16, seed=1)
    m1, h1 = train(TINY, train_set, val_set)
    m2, h2 = train(TINY, train_set, val_set)
    assert h1 == h2
    assert all(np.array_equal(a, b) for a, b in zip(m1.get_weights(), m2.get_weights()))
    assert set(h1) >= {"loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"} and len(h1["loss"]) == 2


def test_early_stopping_keeps_the_best_weights(tmp_path):
    p = Params(epochs=30, model=ModelParams(preset="compact", compact=CompactNetParams(widths=(4, 8))),
               train=TrainParams(batch_size=8, seed=1, early_stopping=2, reduce_lr=1, learning_rate=0.05))
    train_set, val_set = _data(), _data(16, seed=1)
    model, history = train(p, train_set, val_set, checkpoints=tmp_path / "ckpt", live_dir=tmp_path / "live")
    epochs = len(history["val_loss"])
    best = int(np.argmin(history["val_loss"]))
    assert epochs < 30 and epochs - 1 - best == 2  # stopped two epochs after the best one
    from malaria_cnn.training.batches import dataset
    assert model.evaluate(dataset(*val_set, 8), verbose=0)[0] == pytest.approx(history["val_loss"][best], rel=1e-4)
    assert not (tmp_path / "ckpt").exists()  # finished: nothing left to resume
    # DVCLive curves: one row per epoch for train and validation
    assert len((tmp_path / "live/plots/metrics/eval/loss.tsv").read_text().splitlines()) == epochs + 1
    summary = json.loads((tmp_path / "live/metrics.json").read_text())  # what `dvc exp show` compares
    assert summary["step"] == best and summary["eval"]["loss"] == pytest.approx(history["val_loss"][best])
    assert summary["train"]["accuracy"] == pytest.approx(history["accuracy"][best])


def test_patience_counts_only_once_the_model_beats_chance():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")
    plateau = Plateau(stop_patience=2, lr_patience=1)
    plateau.set_model(model)
    stuck = [CHANCE_LOSS + 0.001 * i for i in (1, 2, 3, 4, 5, 6)]  # warming up: no better than a 50/50 answer
    for epoch, loss in enumerate(stuck):
        plateau.on_epoch_end(epoch, {"val_loss": loss})
    assert not model.stop_training and float(model.optimizer.learning_rate) == pytest.approx(0.1)
    for epoch, loss in enumerate([0.4, 0.5, 0.6], start=len(stuck)):  # learned, then no progress
        plateau.on_epoch_end(epoch, {"val_loss": loss})
    assert model.stop_training and plateau.best_epoch == len(stuck)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)  # halved after each flat epoch


def test_class_weights_balance_the_classes():
    assert class_weights(np.array([0, 0, 0, 1])) == {0: pytest.approx(2 / 3), 1: 2.0}
    assert class_weights(np.array([0, 1])) == {0: 1.0, 1: 1.0}


def test_augmentation_is_seeded_and_keeps_the_background_black():
    x = np.zeros((16, 12, 12, 3), np.uint8)
    x[:, 3:9, 3:9] = 180
    x[:, 3, 3] = 40  # a dark corner to show the turns
    a = batches.augment_batch(x, np.array([1, 2], np.int64)).numpy()
    assert np.array_equal(a, batches.augment_batch(x, np.array([1, 2], np.int64)).numpy())
    assert not np.array_equal(a, batches.augment_batch(x, np.array([1, 3], np.int64)).numpy())
    assert a.dtype == np.uint8 and a[:, 0, 0].max() == 0 and a[:, -1, -1].max() == 0
    corners = {tuple(np.argwhere(img[..., 0] == img[..., 0][img[..., 0] > 0].min())[0]) for img in a}
    assert len(corners) > 1  # the dark corner moved: images were turned or flipped


def test_stain_jitter_in_hed_space_changes_colour_not_shape_and_keeps_black():
    x = np.zeros((8, 12, 12, 3), np.uint8)
    x[:, 3:9, 3:9] = [200, 120, 190]  # a pink-purple, Giemsa-like cell on black
    a = batches.augment_batch(x, np.array([1, 2], np.int64), stain="hed").numpy()
    assert np.array_equal(a, batches.augment_batch(x, np.array([1, 2], np.int64), stain="hed").numpy())
    assert a[:, 0, 0].max() == 0 and (a[:, 3:9, 3:9] > 0).all()  # black stays black, the cell stays lit
    colours = a[:, 5, 5].astype(int)
    assert np.ptp(colours, axis=0).max() > 5  # the images' colours differ
    still = batches.hed_jitter(x.astype(np.float32) / 255, np.array([0, 0], np.int64), sigma=0.0).numpy()
    assert np.abs(still * 255 - x).max() < 1.0  # with no jitter, stain space round-trips to the same colours


def test_training_batches_depend_on_the_epoch_not_on_the_process():
    x, y = _data(20)
    whole = [b[1].numpy() for b in batches.train_batches(x, y, 8, seed=5, first_epoch=0, epochs=3, augment=True)]
    resumed = [b[1].numpy() for b in batches.train_batches(x, y, 8, seed=5, first_epoch=2, epochs=3, augment=True)]
    assert len(whole) == 9 and len(resumed) == 3
    assert all(np.array_equal(a, b) for a, b in zip(whole[6:], resumed))
    images = [b[0].numpy() for b in batches.train_batches(x, y, 8, seed=5, first_epoch=0, epochs=3, augment=True)]
    again = [b[0].numpy() for b in batches.train_batches(x, y, 8, seed=5, first_epoch=2, epochs=3, augment=True)]
    assert all(np.array_equal(a, b) for a, b in zip(images[6:], again))


RESUME_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {src!r})
from malaria_cnn.core.params import CompactNetParams, ModelParams, Params, TrainParams
from malaria_cnn.training import train as training
from malaria_cnn.training.train import train
training.CHECKPOINT_SECONDS = 0  # every epoch, so that the kill lands between two checkpoints
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8); y = (np.arange(300) % 2).astype(np.uint8)
x[y == 1, 8:16, 8:16] = 0
p = Params(epochs=6, model=ModelParams(preset="compact", compact=CompactNetParams(widths=(16, 32, 64))),
           train=TrainParams(batch_size=16, seed=4, augment=True, reduce_lr=2, distribute=sys.argv[4]))
model, history = train(p, (x[:250], y[:250]), (x[250:], y[250:]), checkpoints=sys.argv[1], live_dir=sys.argv[2])
np.savez(sys.argv[3], *model.get_weights())
print("epochs", len(history["loss"]))
"""


def _run(tmp_path, tag, distribute):
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(src=str(ROOT / "src")))
    args = [sys.executable, str(script), str(tmp_path / f"ckpt-{tag}"), str(tmp_path / f"live-{tag}"),
            str(tmp_path / f"weights-{tag}.npz"), distribute]
    return args


@pytest.mark.parametrize("distribute", ["none", "mirrored"])
def test_a_killed_run_resumes_from_its_last_finished_epoch(tmp_path, distribute, monkeypatch):
    if distribute == "mirrored":
        monkeypatch.setenv("MALARIA_CNN_CPU_DEVICES", "2")  # two replicas, on two logical CPU devices
    whole = subprocess.run(_run(tmp_path, "whole", distribute), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr

    proc = subprocess.Popen(_run(tmp_path, "killed", distribute), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    state = tmp_path / "ckpt-killed" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # kill -9: no clean-up runs
    proc.wait()
    done = json.loads(state.read_text())["epochs_done"]
    assert 2 <= done < 6, "the run finished before it could be killed"

    resumed = subprocess.run(_run(tmp_path, "killed", distribute), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {done}" in resumed.stderr
    assert ("mirrored over 2 devices" in resumed.stderr) == (distribute == "mirrored")
    assert "epochs 6" in resumed.stdout
    with np.load(tmp_path / "weights-whole.npz") as a, np.load(tmp_path / "weights-killed.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)  # as if it had never been killed
    eval_rows = (tmp_path / "live-killed/plots/metrics/eval/loss.tsv").read_text().splitlines()
    assert eval_rows == (tmp_path / "live-whole/plots/metrics/eval/loss.tsv").read_text().splitlines()[:1] + eval_rows[1:]
    assert len(eval_rows) == 7


def test_a_checkpoint_waits_for_its_interval(tmp_path):
    from malaria_cnn.training import networks
    from malaria_cnn.training.train import Checkpoint, Plateau

    model = networks.build(TINY.model, image_size=16)
    networks.compile_model(model, TINY.train)
    checkpoint = Checkpoint(tmp_path, "fingerprint", Plateau(0, 0), {}, None, every=3600)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0)
    assert not any(tmp_path.iterdir())  # an hour has not passed
    checkpoint.every = 0
    checkpoint.on_epoch_end(1)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_done"] == 2 and (tmp_path / state["model"]).is_file()


def test_cosine_schedule_decays_the_rate_by_epoch_and_label_smoothing_reaches_the_loss():
    import math

    p = dataclasses.replace(TINY, epochs=4, train=dataclasses.replace(TINY.train, schedule="cosine", reduce_lr=1,
                                                                      label_smoothing=0.2))
    model, history = train(p, _data(), _data(16, seed=1))
    expected = p.train.learning_rate * 0.5 * (1 + math.cos(math.pi * 3 / 4))  # the last epoch's rate
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(expected, rel=1e-5)
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.2)


def test_a_fit_traces_its_training_step_once_fresh_or_resumed(tmp_path, monkeypatch):
    """The optimizer's and metrics' variables exist before fit: a training step traced while creating
    them is traced a second time by TensorFlow, which costs seconds per fold on a CPU."""
    from malaria_cnn.training import train as training
    from malaria_cnn.training.runtime import keras

    traced = []
    step = keras.Model.train_step
    monkeypatch.setattr(keras.Model, "train_step", lambda self, data: (traced.append(1), step(self, data))[1])
    monkeypatch.setattr(training, "CHECKPOINT_SECONDS", 0)
    monkeypatch.setattr(training.shutil, "rmtree", lambda *a, **k: None)  # the checkpoint outlives the run
    train(TINY, _data(), _data(16, seed=1), checkpoints=tmp_path / "ckpt")
    assert len(traced) == 1
    train(dataclasses.replace(TINY, epochs=3), _data(), _data(16, seed=1), checkpoints=tmp_path / "ckpt")
    assert len(traced) == 2  # resumed after epoch 2, traced once more


BYTES_SCRIPT = """
import shutil, sys, numpy as np
sys.path.insert(0, {src!r})
from malaria_cnn.core.params import CompactNetParams, ModelParams, Params, TrainParams
from malaria_cnn.training import model_io
from malaria_cnn.training import train as training
from malaria_cnn.training.train import train
training.CHECKPOINT_SECONDS = 0  # every epoch: the run "killed" after epoch 2 leaves epoch 2's checkpoint
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8); y = (np.arange(48) % 2).astype(np.uint8)
x[y == 1, 4:8, 4:8] = 0
p = Params(epochs=int(sys.argv[3]), model=ModelParams(preset="compact", compact=CompactNetParams(widths=(4, 8))),
           train=TrainParams(batch_size=8, seed=4, augment=True, reduce_lr=1, early_stopping=0))
if sys.argv[4] == "killed":
    shutil.rmtree = lambda *a, **k: None  # the checkpoint outlives the run, as after a kill -9
model, _ = train(p, (x[:32], y[:32]), (x[32:], y[32:]), checkpoints=sys.argv[1])
model_io.save(model, sys.argv[2])
"""


def test_a_resumed_run_saves_the_same_model_bytes(tmp_path):
    """dvc.lock records the model's hash: a run killed after epoch 2 and resumed must save what an
    uninterrupted one saves, or every later stage reruns."""
    script = tmp_path / "run.py"
    script.write_text(BYTES_SCRIPT.format(src=str(ROOT / "src")))

    def run(ckpt, out, epochs, how):
        result = subprocess.run([sys.executable, str(script), str(tmp_path / ckpt), str(tmp_path / out), str(epochs),
                                 how], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result

    run("straight", "straight.keras", 3, "whole")
    run("killed", "two.keras", 2, "killed")
    assert "resuming after epoch 2" in run("killed", "resumed.keras", 3, "resume").stderr
    assert (tmp_path / "resumed.keras").read_bytes() == (tmp_path / "straight.keras").read_bytes()
