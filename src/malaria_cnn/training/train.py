"""Train a network preset on the train split, watching the val split, resumable after a kill.

At the end of an epoch, once CHECKPOINT_SECONDS have passed since the last checkpoint, the model,
its optimizer and the training state are checkpointed; a run that is killed and started again with
the same params and data continues from that epoch, and ends with the same weights as a run never
killed. Per-epoch metrics go to DVCLive, which `dvc plots show` and `dvc exp show` read.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from dvclive.keras import DVCLiveCallback  # noqa: E402, I001  (it imports Keras: after runtime's quiet import)
from dvclive.utils import standardize_metric_name

from dvclive import Live
from malaria_cnn.core import atomic
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import Params
from malaria_cnn.training import batches, distribute, finetune, networks
from malaria_cnn.training.runtime import keras, native_stderr_filtered, seed_everything

Split = tuple[np.ndarray, np.ndarray]

# A checkpoint costs about a tenth of a small epoch: one every 30 s loses at most that much to a kill.
CHECKPOINT_SECONDS = 30.0


# The validation loss of a constant 50/50 answer. Until a model beats it, it is warming up (its
# BatchNorm statistics settling, say), not on a plateau: no patience is counted.
CHANCE_LOSS = math.log(len(CLASS_NAMES))


class Plateau(keras.callbacks.Callback):
    """On validation loss: keep the best weights, halve the learning rate after `lr_patience` epochs
    without progress, stop after `stop_patience` (0 turns either off); patience counts only once the
    model has beaten CHANCE_LOSS. Its state survives a resume."""

    def __init__(self, stop_patience: int, lr_patience: int, state: dict | None = None):
        super().__init__()
        self.stop_patience, self.lr_patience = stop_patience, lr_patience
        state = state or {}
        self.best = state.get("best", math.inf)
        self.best_epoch = state.get("best_epoch", -1)
        self.since_best = state.get("since_best", 0)
        self.since_lr = state.get("since_lr", 0)
        self.best_weights = None

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "since_best": self.since_best, "since_lr": self.since_lr}

    def on_epoch_end(self, epoch, logs=None):
        if "val_loss" not in logs:  # trained without a validation split: nothing to watch
            return
        loss = float(logs["val_loss"])
        if loss < self.best:
            self.best, self.best_epoch, self.since_best, self.since_lr = loss, epoch, 0, 0
            self.best_weights = self.model.get_weights()
            return
        if self.best >= CHANCE_LOSS:
            return
        self.since_best += 1
        self.since_lr += 1
        if self.lr_patience and self.since_lr >= self.lr_patience:
            self.model.optimizer.learning_rate.assign(_float(self.model.optimizer.learning_rate) / 2)
            self.since_lr = 0
        if self.stop_patience and self.since_best >= self.stop_patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class EpochHistory(keras.callbacks.Callback):
    """Append each epoch's metrics to `history` (which a resumed run starts from its checkpoint)."""

    def __init__(self, history: dict):
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))


class Checkpoint(keras.callbacks.Callback):
    """At the end of an epoch, once `every` seconds have passed since the last checkpoint (0: every
    epoch): the model with its optimizer, the best weights so far, and state.json (written last: a
    kill at any moment leaves the previous checkpoint whole)."""

    def __init__(self, folder: Path, fingerprint: str, plateau: Plateau, history: dict, best_file: str | None,
                 every: float):
        super().__init__()
        self.folder, self.fingerprint, self.plateau = folder, fingerprint, plateau
        self.history, self.best_file, self.every = history, best_file, every
        self.last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self.last < self.every:
            return
        done = epoch + 1
        model_file = f"epoch-{done}.keras"
        self.model.save(self.folder / model_file)
        best = f"best-{self.plateau.best_epoch + 1}.npz"
        if self.plateau.best_weights is not None and best != self.best_file:
            with atomic.atomic_path(self.folder / best) as tmp:
                np.savez(tmp, *self.plateau.best_weights)
            self.best_file = best
        state = {
            "fingerprint": self.fingerprint,
            "epochs_done": done,
            "model": model_file,
            "best_weights": self.best_file,
            "learning_rate": _float(self.model.optimizer.learning_rate),
            "seed_generators": [g.state.numpy().tolist() for g in _seed_generators(self.model)],
            "plateau": self.plateau.state(),
            "history": self.history,
        }
        atomic.write_json(self.folder / "state.json", state)
        for old in self.folder.iterdir():
            if old.name not in ("state.json", model_file, self.best_file):
                old.unlink()
        self.last = time.monotonic()


class BestEpochLive(DVCLiveCallback):
    """DVCLive's callback, except that the summary (dvclive/metrics.json, which `dvc exp show` compares)
    reports the epoch whose weights the model keeps, not the last one trained."""

    def __init__(self, live: Live, plateau: Plateau, history: dict):
        super().__init__(live=live)
        self.plateau, self.history = plateau, history

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        best_summary(self.live, self.history, self.plateau.best_epoch)


def best_summary(live: Live, history: dict, best_epoch: int) -> None:
    """Rewrite the summary DVCLive wrote at the end with the best epoch's metrics and step."""
    if best_epoch < 0:
        return
    for key, values in history.items():
        *path, leaf = standardize_metric_name(key, "dvclive.keras").split("/")
        node = live.summary
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = values[best_epoch]
    live.summary["step"] = best_epoch
    atomic.write_json(live.metrics_file, live.summary)


def fingerprint(p: Params, train: Split, val: Split | None) -> str:
    """What a checkpoint must match to be resumed: the model and training params, the model started from
    (train.init_from's bytes), and the data."""
    train_cfg = asdict(p.train)
    del train_cfg["finetune"]["epochs"]  # as epochs, left out: a run resumed with more epochs goes on
    digest = hashlib.sha256(json.dumps([asdict(p.model), train_cfg, finetune.origin(p.train)],
                                       sort_keys=True).encode())
    for array in (*train, *(val or ())):
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse class frequency, scaled so that a balanced set gets weight 1 for each class."""
    counts = np.bincount(y, minlength=len(CLASS_NAMES))
    return {i: float(len(y) / (len(CLASS_NAMES) * c)) for i, c in enumerate(counts) if c}


def train(p: Params, train: Split, val: Split | None, checkpoints: str | Path | None = None,
          live_dir: str | Path | None = None, callbacks: list | None = None,
          run: distribute.Run | None = None) -> tuple[keras.Model, dict]:
    """Build (or resume), compile and fit the network; return it, best weights restored, with its history.

    With p.train.init_from set, the network is a copy of that model (finetune.py), trained for
    p.train.finetune.epochs at p.train.finetune.learning_rate; otherwise model.preset's network, trained for
    p.epochs at p.train.learning_rate. Without `val`, it trains for those epochs with no early stopping and
    keeps the last weights.

    With `checkpoints`, a folder, training is checkpointed there each epoch and resumed from it;
    with `live_dir`, per-epoch metrics are logged there by DVCLive; `callbacks` are Keras's own.
    `run` is distribute.start()'s (started here from `p.train` if not given).
    """
    run = run or distribute.start(p.train)
    p = finetune.effective(p)  # from here on, epochs and train.learning_rate are those this model trains with
    seed_everything(p.train.seed)
    x_train, y_train = train
    if checkpoints and run.kind == "multi_worker":
        print("train: no checkpoints with train.distribute=multi_worker: a killed run starts from epoch 1",
              file=sys.stderr)
        checkpoints = None
    folder = Path(checkpoints) if checkpoints else None
    fp = fingerprint(p, train, val)
    state = _resumable_state(folder, fp)

    if state:
        with run.scope():
            model = keras.models.load_model(folder / state["model"], safe_mode=True)
            networks.build_training_state(model)
        model.optimizer.learning_rate.assign(state["learning_rate"])
        for generator, value in zip(_seed_generators(model), state["seed_generators"]):
            generator.state.assign(np.array(value, dtype=generator.state.dtype))  # dropout goes on as it would have
        first_epoch, history = state["epochs_done"], state["history"]
        print(f"train: resuming after epoch {first_epoch} from {folder}", file=sys.stderr)
    else:
        start = finetune.load(p, image_size=x_train.shape[1]) if p.train.init_from else None
        with run.scope():  # the variables of the model, its optimizer and metrics live on every replica
            model = (finetune.trainable_copy(start, p.model) if start else
                     networks.build(p.model, image_size=x_train.shape[1], stain_mode=p.preprocess.stain))
            networks.compile_model(model, p.train)
        first_epoch, history = 0, {}
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    cosine = p.train.schedule == "cosine"
    plateau = Plateau(p.train.early_stopping, 0 if cosine else p.train.reduce_lr, state["plateau"] if state else None)
    if state and state["best_weights"]:
        with np.load(folder / state["best_weights"]) as saved:
            plateau.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    callbacks = [EpochHistory(history), plateau, *(callbacks or [])]
    if cosine:  # by epoch index alone, so a resumed run continues the same curve
        callbacks.append(keras.callbacks.LearningRateScheduler(
            lambda epoch: p.train.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / p.epochs))))
    if folder:
        callbacks.append(Checkpoint(folder, fp, plateau, history, state["best_weights"] if state else None,
                                    CHECKPOINT_SECONDS))
    live = None
    if live_dir:
        live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
        _replay(live, history)
        callbacks.append(BestEpochLive(live, plateau, history))

    stopped = state and state["plateau"]["since_best"] >= p.train.early_stopping > 0
    if first_epoch < p.epochs and not stopped:
        with native_stderr_filtered():
            model.fit(
                batches.train_batches(x_train, y_train, p.train.batch_size, p.train.seed, first_epoch, p.epochs,
                                      p.train.augment, p.train.stain_jitter),
                steps_per_epoch=batches.steps_per_epoch(len(x_train), p.train.batch_size),
                validation_data=batches.dataset(*val, p.train.batch_size) if val else None,
                initial_epoch=first_epoch,
                epochs=p.epochs,
                class_weight=class_weights(y_train) if p.train.class_weights else None,
                callbacks=callbacks,
                shuffle=False,  # train_batches orders each epoch itself, seeded
                verbose=1 if sys.stdout.isatty() else 2,
            )
    else:
        plateau.model = model
        plateau.on_train_end()
        if live:
            live.end()
            best_summary(live, history, plateau.best_epoch)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)  # finished: nothing to resume
    return model, history


def _resumable_state(folder: Path | None, fp: str) -> dict | None:
    if not folder or not (folder / "state.json").is_file():
        return None
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if state.get("fingerprint") != fp or not (folder / state["model"]).is_file():
        return None
    return state


def _replay(live: Live, history: dict) -> None:
    """Log the epochs a resumed run already trained, so the DVCLive curves start at epoch 1."""
    epochs = len(next(iter(history.values()))) if history else 0
    for e in range(epochs):
        for key, values in history.items():
            live.log_metric(standardize_metric_name(key, "dvclive.keras"), values[e])
        live.next_step()


def _float(variable) -> float:
    """A scalar variable's value, also when it is mirrored across replicas."""
    return float(keras.ops.convert_to_numpy(variable))


def _seed_generators(model: keras.Model) -> list:
    """The random-number state of each dropout layer, those of nested models too (an ensemble fine-tuned from):
    Keras does not save it with the model."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _seed_generators(layer)
        elif hasattr(layer, "seed_generator"):
            found.append(layer.seed_generator)
    return found
