"""One model per cross-validation fold, and the model shipped from them (ensemble or refit).

Fold k's model trains on the non-test cells outside fold k, watching fold k for early stopping,
and scores fold k: those are its out-of-fold (OOF) predictions. A fold's folder holds the model,
the OOF rows, the training history (with the model it started from, when fine-tuned) and its DVCLive curves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from malaria_cnn.core import atomic
from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import Params
from malaria_cnn.training import distribute, ensemble, finetune, model_io
from malaria_cnn.training.runtime import keras
from malaria_cnn.training.train import train

OOF_COLUMNS = ["file", "label", "slide", "fold", "p_parasitized"]
MODEL_FILE, OOF_FILE, HISTORY_FILE, LIVE_DIR = "model.keras", "oof.csv", "history.json", "dvclive"


def fit_fold(p: Params, k: int, cells: dict, held: dict, dest: Path, checkpoints: Path,
             run: distribute.Run) -> str:
    """Train fold k's model into the folder `dest`; return a one-line summary."""
    start = finetune.origin(p.train)
    model, history = train(p, (cells["x"], cells["y"]), (held["x"], held["y"]), checkpoints=checkpoints,
                           live_dir=dest / LIVE_DIR, run=run)
    prob = model_io.parasitized_probability(model, held["x"], p.predict.batch_size)
    model_io.save(model, dest / MODEL_FILE)
    rows = ((f, CLASS_NAMES[y], s, k, round(float(q), 6)) for f, y, s, q in
            zip(held["filename"], held["y"], held["slide"], prob))
    atomic.write_csv(dest / OOF_FILE, OOF_COLUMNS, rows)
    best = int(np.argmin(history["val_loss"]))
    atomic.write_json(dest / HISTORY_FILE, {"epochs": len(history["val_loss"]), "best_epoch": best + 1,
                                            "init_from": start, "history": history})
    return (f"train@{k}: {finetune.describe(start)}{len(cells['y'])} cells -> {len(history['val_loss'])} epochs "
            f"(best {best + 1}, val loss {history['val_loss'][best]:.4f}); scored {len(prob)} out-of-fold cells of "
            f"{len(set(held['slide']))} slides")


def best_epochs(fold_dirs: list[Path]) -> list[int]:
    """Each fold model's best epoch (1-based), from its history."""
    return [json.loads((d / HISTORY_FILE).read_text())["best_epoch"] for d in fold_dirs]


def ensemble_of(fold_dirs: list[Path]) -> keras.Model:
    """The fold models as one model averaging their probabilities (a single fold: its model)."""
    return ensemble.average([model_io.load(d / MODEL_FILE) for d in fold_dirs])


def refit_epochs(fold_dirs: list[Path]) -> int:
    """The epochs a refit on all non-test cells trains for: the median of the folds' best epochs."""
    return max(1, int(np.round(np.median(best_epochs(fold_dirs)))))


def refit(p: Params, fold_dirs: list[Path], parts: list[dict], excluded: set[str],
          run: distribute.Run) -> tuple[keras.Model, str]:
    """One model on all the cells of `parts` but `excluded` (file names), for the folds' median best epochs."""
    x, y, files = (np.concatenate([c[key] for c in parts]) for key in ("x", "y", "filename"))
    keep = ~np.isin(files, sorted(excluded))
    epochs = refit_epochs(fold_dirs)
    start = finetune.origin(p.train)
    model, _ = train(finetune.with_epochs(p, epochs), (x[keep], y[keep]), None, run=run)
    left_out = f", {int((~keep).sum())} flagged crops left out" if excluded else ""
    return model, (f"final: refit, {finetune.describe(start)}on {int(keep.sum())} non-test cells for {epochs} epochs "
                   f"(the folds' median best){left_out}")
