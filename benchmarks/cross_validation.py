"""Benchmark: slide-grouped 5-fold cross-validation of network presets on real NIH crops.

Each fold holds out a fifth of the slides (patients) for testing; of the rest, about a tenth of
the slides watch training (validation: early stopping, learning-rate halving). Every preset is
trained on the same folds with its own training settings and scored on the held-out slides at
threshold 0.5: accuracy, ROC AUC, sensitivity and specificity (Parasitized is positive), and the
seconds per training epoch. Then the input path's training throughput: the pipeline's uint8
tf.data batches against the tutorial's `model.fit` on float32 arrays, same network, same run.

    python benchmarks/cross_validation.py                      # seed vs compact (the default)
    python benchmarks/cross_validation.py --folds 5 --presets seed compact
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from malaria_cnn.core import params  # noqa: E402
from malaria_cnn.core.labels import POSITIVE  # noqa: E402
from malaria_cnn.data import cells_npz  # noqa: E402
from malaria_cnn.data.ingest import ingest  # noqa: E402
from malaria_cnn.data.preprocess import preprocess  # noqa: E402
from malaria_cnn.evaluation import metrics  # noqa: E402
from malaria_cnn.training import batches, model_io, networks  # noqa: E402
from malaria_cnn.training.runtime import keras, seed_everything  # noqa: E402
from malaria_cnn.training.train import train  # noqa: E402

DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

# The tutorial's way of training its network (25 epochs, nothing else) and the project's default.
SETTINGS = {
    "seed": dict(model=dict(preset="seed"), train=dict(augment=False, class_weights=False, early_stopping=0, reduce_lr=0)),
    "compact": dict(model=dict(preset="compact"), train=dict(augment=True, class_weights=True, early_stopping=6, reduce_lr=3)),
}


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def load_dev(zip_path: Path, size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ingest(params.DataParams(source="zip", path=str(zip_path)), f"{tmp}/raw.zip", f"{tmp}/m.csv", f"{tmp}/r.csv")
        preprocess(f"{tmp}/raw.zip", f"{tmp}/m.csv", f"{tmp}/cells.npz", f"{tmp}/rej.csv",
                   params.PreprocessParams(image_size=size))
        return cells_npz.load(f"{tmp}/cells.npz")


def folds(y: np.ndarray, slides: np.ndarray, n: int, seed: int):
    """(train, val, test) index arrays per fold, grouped by slide, stratified by label."""
    outer = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed)
    for rest, test in outer.split(np.zeros(len(y)), y, slides):
        inner = StratifiedGroupKFold(n_splits=10, shuffle=True, random_state=seed)
        fit, val = next(inner.split(np.zeros(len(rest)), y[rest], slides[rest]))
        yield rest[fit], rest[val], test


def with_settings(base: params.Params, preset: str) -> params.Params:
    s = SETTINGS[preset]
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, **s["model"]),
        train=dataclasses.replace(base.train, **s["train"]),
    )


def throughput(p: params.Params, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Images/s of one training epoch: the pipeline's uint8 tf.data path, then the tutorial's float32 arrays."""
    seed_everything(p.train.seed)
    model = networks.build(p.model, x.shape[1])
    networks.compile_model(model, p.train)
    train_ds = batches.train_batches(x, y, p.train.batch_size, p.train.seed, 0, 2, augment=False)
    steps = batches.steps_per_epoch(len(x), p.train.batch_size)
    model.fit(train_ds, steps_per_epoch=steps, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(train_ds, steps_per_epoch=steps, epochs=2, initial_epoch=1, verbose=0)
    ours = len(x) / (time.perf_counter() - start)

    x_float = x.astype(np.float32)  # the tutorial feeds float arrays (unscaled; scaling is in our model)
    y_hot = keras.utils.to_categorical(y, 2)
    model.fit(x_float[:256], y_hot[:256], batch_size=p.train.batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x_float, y_hot, batch_size=p.train.batch_size, epochs=1, verbose=0, shuffle=True)
    return ours, len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--presets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--epochs", type=int, default=25)
    args = ap.parse_args()

    base = dataclasses.replace(params.load(ROOT / "params.yaml"), epochs=args.epochs)
    arrays = load_dev(args.zip, base.preprocess.image_size)
    x, y, slides = arrays["x"], arrays["y"], arrays["slide"]
    print(f"{len(y):,} crops from {len(set(slides))} slides, image size {x.shape[1]}, {args.folds} folds", flush=True)

    results: dict[str, list[dict]] = {k: [] for k in args.presets}
    for k, (fit, val, test) in enumerate(folds(y, slides, args.folds, seed=base.split.seed)):
        for preset in args.presets:
            p = with_settings(base, preset)
            timer = EpochTimer()
            model, history = train(p, (x[fit], y[fit]), (x[val], y[val]), callbacks=[timer])
            prob = model_io.parasitized_probability(model, x[test], 256)
            point = metrics.all_metrics(np.ones((1, len(test))), y[test] == POSITIVE, prob, 0.5, bins=10)
            m = {name: float(v[0]) for name, v in point.items()}
            m["s_per_epoch"] = float(np.median(timer.seconds))
            m["epochs"] = len(history["loss"])
            results[preset].append(m)
            print(f"fold {k + 1}: {preset:8} acc {m['accuracy']:.4f}  auc {m['roc_auc']:.4f}  "
                  f"sens {m['sensitivity']:.4f}  spec {m['specificity']:.4f}  "
                  f"{m['epochs']} epochs, {m['s_per_epoch']:.1f} s/epoch "
                  f"({len(set(slides[test]))} test slides, {len(test)} cells)", flush=True)

    print(f"\nmean ± std over {args.folds} slide-grouped folds (held-out slides, threshold 0.5)")
    print(f"{'preset':10}{'params':>10}{'accuracy':>18}{'ROC AUC':>18}{'sensitivity':>18}{'specificity':>18}{'s/epoch':>9}")
    for preset, rows in results.items():
        count = networks.build(with_settings(base, preset).model, x.shape[1]).count_params()

        def stat(key):
            v = np.array([r[key] for r in rows], dtype=float)
            return f"{v.mean():.4f} ± {v.std():.4f}"

        seconds = np.mean([r["s_per_epoch"] for r in rows])
        print(f"{preset:10}{count:>10,}{stat('accuracy'):>18}{stat('roc_auc'):>18}{stat('sensitivity'):>18}"
              f"{stat('specificity'):>18}{seconds:9.1f}")
    if len(results) == 2 and "seed" in results:
        other = next(k for k in results if k != "seed")
        ratio = np.mean([r["s_per_epoch"] for r in results[other]]) / np.mean([r["s_per_epoch"] for r in results["seed"]])
        print(f"{other} time per epoch / seed's: {ratio:.2f}")

    print("\ntraining throughput, one epoch on the first fold's train cells (images/s):")
    fit, _, _ = next(folds(y, slides, args.folds, seed=base.split.seed))
    for preset in args.presets:
        ours, tutorial = throughput(with_settings(base, preset), x[fit], y[fit])
        print(f"{preset:10} pipeline (uint8 tf.data) {ours:7.0f}   tutorial (float32 arrays) {tutorial:7.0f}   "
              f"ratio {ours / tutorial:.2f}")


if __name__ == "__main__":
    main()
