"""Benchmark: a model trained on NIH crops alone, scored on smear photos of stains it never saw.

For each lever (params changed from the committed params.yaml), the pipeline's steps run on the 49
slides of the NIH dev zip: slide-grouped folds, a model per fold (early stopping on its held-out fold),
out-of-fold (OOF) predictions, the threshold rule on them, the fold models' ensemble and the training
slides' stain range. On the NIH side it prints the OOF figures, the per-slide false-call rate of
uninfected cells among them (median, 90th percentile, max over the slides with at least 10 uninfected
cells). Then `malaria-cnn screen --truth` (screening.run, as the command calls it) scores each shared
photo batch of ../shared/data/fields (the pale `iml_malaria` and the dark `iml_malaria_dark`):
the photos referred (stain unlike training), and over the photos counted the called and the true
parasitemia (pooled over their cells), parasitized-cell precision and recall. Nothing is tuned on the
photos: the threshold is the OOF one, the stain range the training slides'.

    python benchmarks/stain.py --levers none od od_untrimmed none_trimmed
    python benchmarks/stain.py --levers od --shifts          # and how far standardisation holds under stain shifts
    python benchmarks/stain.py --levers od --keep /tmp/stain # keep the models and screen outputs
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
FIELDS = ROOT.parent / "shared" / "data" / "fields"
BATCHES = ("iml_malaria", "iml_malaria_dark")

from cross_validation import load_dev, with_lever  # noqa: E402
from measure import DEV_ZIP  # noqa: E402

from malaria_cnn.core import params  # noqa: E402
from malaria_cnn.core.labels import POSITIVE  # noqa: E402
from malaria_cnn.data import stain  # noqa: E402
from malaria_cnn.evaluation import false_calls, metrics, operating_point  # noqa: E402
from malaria_cnn.screening import crops, truth  # noqa: E402
from malaria_cnn.screening.run import run  # noqa: E402
from malaria_cnn.training import ensemble, model_io  # noqa: E402
from malaria_cnn.training.runtime import keras  # noqa: E402
from malaria_cnn.training.train import train  # noqa: E402

# Each lever: params changed from the committed params.yaml, and the share of a photo cell's diameter trimmed
# off its rim before scoring (screening/crops.py's TRIM). Levers with the same params share one training.
LEVERS = {
    "od": ({}, crops.TRIM),  # the committed params: each cell's optical density standardised, rims trimmed
    "od_untrimmed": ({}, 0.0),
    "none": ({"preprocess": {"stain": "none"}}, 0.0),  # crops as decoded, cells untrimmed: the default before
    "none_trimmed": ({"preprocess": {"stain": "none"}}, crops.TRIM),
}


# Synthetic stain shifts: each RGB channel's optical density multiplied by these factors (1 > darker)
SHIFTS = [(f,) * 3 for f in (0.25, 0.5, 0.7, 1.4, 2, 3, 4, 6)] + [
    (1, 2, 1), (1, 4, 1), (2, 1, 1), (4, 1, 1), (1, 1, 2), (1, 1, 4), (0.5, 1, 1), (1, 0.5, 1), (1, 1, 0.5)]


def shifted(rgb: np.ndarray, factors) -> np.ndarray:
    """Crops (..., 3) as a stain `factors` times as dense per channel would show them; black stays black."""
    od = -np.log(np.maximum(rgb, 1) / 255.0) * np.asarray(factors, float)
    out = np.clip(np.rint(255 * np.exp(-od)), 1, 255).astype(np.uint8)
    out[rgb.max(axis=-1) < stain.BLACK] = 0
    return out


def shift_table(p: params.Params, raw: np.ndarray, y: np.ndarray, slides: np.ndarray, folds: list) -> None:
    """Each held-out fold's raw crops under each synthetic stain shift, prepared as the lever prepares
    crops and scored by the fold's model, at the unshifted OOF threshold: how far standardisation holds."""
    def oof(factors) -> np.ndarray:
        prob = np.zeros(len(y))
        for held, model in folds:
            x = np.stack([stain.standardised(c, p.preprocess.stain)[0] for c in shifted(raw[held], factors)])
            prob[held] = model_io.parasitized_probability(model, x, p.predict.batch_size)
        return prob

    base = oof((1, 1, 1))
    threshold = operating_point.choose(y, base, p.threshold)
    print(f"synthetic stain shifts of the held-out slides, at the OOF threshold {threshold:.4f}")
    print("| OD x (red, green, blue) | sensitivity | specificity | false calls per slide: p90 / max |")
    print("|---|---|---|---|")
    for factors in [(1, 1, 1), *SHIFTS]:
        prob = base if factors == (1, 1, 1) else oof(factors)
        fc = false_calls.summary(y, prob, slides, threshold)
        print(f"| {factors} | {np.mean(prob[y == POSITIVE] >= threshold):.4f} | "
              f"{np.mean(prob[y != POSITIVE] < threshold):.4f} | {fc['false_call_rate_p90']:.1%} / "
              f"{fc['false_call_rate_max']:.1%} |", flush=True)


def trained(p: params.Params, arrays: dict, folds: int,
            raw: np.ndarray | None = None) -> tuple[keras.Model, float, dict]:
    """The fold models' ensemble, the OOF threshold, and the OOF figures (with `raw`, the crops as decoded,
    also the synthetic-shift table)."""
    x, y, slides = arrays["x"], arrays["y"], arrays["slide"]
    oof, models, epochs, held_out = np.zeros(len(y)), [], [], []
    start = time.perf_counter()
    for rest, held in StratifiedGroupKFold(folds, shuffle=True, random_state=p.split.seed).split(x, y, slides):
        model, history = train(p, (x[rest], y[rest]), (x[held], y[held]))
        oof[held] = model_io.parasitized_probability(model, x[held], p.predict.batch_size)
        models.append(model)
        held_out.append((held, model))
        epochs.append(len(history["val_loss"]))
    minutes = (time.perf_counter() - start) / 60
    if raw is not None:
        shift_table(p, raw, y, slides, held_out)
    threshold = operating_point.choose(y, oof, p.threshold)
    at = metrics.all_metrics(np.ones((1, len(y))), y == POSITIVE, oof, threshold, bins=10)
    half = metrics.all_metrics(np.ones((1, len(y))), y == POSITIVE, oof, 0.5, bins=10)
    figures = {"accuracy": float(half["accuracy"][0]), "roc_auc": float(at["roc_auc"][0]),
               "sensitivity": float(at["sensitivity"][0]), "specificity": float(at["specificity"][0]),
               **false_calls.summary(y, oof, slides, threshold), "epochs": epochs, "train_min": minutes}
    return ensemble.average(models), threshold, figures


def screened(model: keras.Model, threshold: float, mode: str, span: stain.StainRange, out: Path) -> dict:
    """Each photo batch through `malaria-cnn screen --truth`: {batch: figures}."""
    score = model_io.scorer(model, 64)
    size = model_io.image_size(model)
    found = {}
    for batch in BATCHES:
        folder = FIELDS / batch
        with contextlib.redirect_stdout(io.StringIO()):
            run(score, sorted(folder.glob("*.JPG")), out / batch, size, threshold,
                boxes=truth.load(folder / "annotations.json"), stain_mode=mode, stain_range=span, progress=False)
        d = json.loads((out / batch / "detection.json").read_text())
        rows = (out / batch / "images.csv").read_text().splitlines()[1:]
        referred = len(d["photos_referred"])
        found[batch] = {"photos": len(rows), "referred": referred, "counted": d["photos"],
                        "called": d["parasitized_called"] / d["found"] if d["found"] else None,
                        "true": d["parasitized_labelled"] / d["labelled"] if d["labelled"] else None,
                        "precision": d["parasitized"]["precision"], "recall": d["parasitized"]["recall"],
                        "photo_error_pts": None if d["parasitemia_abs_error"]["mean"] is None
                        else 100 * d["parasitemia_abs_error"]["mean"]}
    return found


def _num(v, fmt="{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    ap.add_argument("--keep", type=Path, help="keep each lever's model and screen outputs under this folder")
    ap.add_argument("--shifts", action="store_true", help="also score the held-out folds under synthetic stain shifts")
    args = ap.parse_args()
    missing = [p for p in (args.zip, *(FIELDS / b for b in BATCHES)) if not p.exists()]
    if missing:
        sys.exit(f"error: {missing[0]} not found (see ../shared/data/README.md and fields/README.md)")
    base, cache, models, rows = params.load(ROOT / "params.yaml"), {}, {}, []
    for lever in args.levers:
        change, crops.TRIM = LEVERS[lever]
        p = with_lever(base, change)
        arrays = load_dev(args.zip, p.preprocess, cache)
        key = json.dumps(change, sort_keys=True)
        if key not in models:
            raw = (load_dev(args.zip, dataclasses.replace(p.preprocess, stain="none"), cache)["x"]
                   if args.shifts else None)
            models[key] = trained(p, arrays, args.folds, raw)
        model, threshold, nih = models[key]
        span = stain.StainRange.of_slides(arrays["density"], arrays["slide"], p.preprocess.stain)
        with tempfile.TemporaryDirectory() as tmp:
            out = args.keep / lever if args.keep else Path(tmp)
            if args.keep:
                out.mkdir(parents=True, exist_ok=True)
                model_io.save(model, out / "model.keras")
            photos = screened(model, threshold, p.preprocess.stain, span, out)
        line = {"lever": lever, "threshold": round(threshold, 4), "nih": nih, "photos": photos}
        print(json.dumps(line), flush=True)
        rows.append(line)

    print(f"\nNIH dev zip, {args.folds} slide-grouped folds, out of fold (threshold by rule "
          f"{base.threshold.rule}); per-slide false-call rate over slides with >= {false_calls.MIN_UNINFECTED} "
          f"uninfected cells")
    print("| lever | accuracy | ROC AUC | sensitivity | specificity | false calls per slide: median / p90 / max "
          "(worst slide) | training min |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        n = r["nih"]
        print(f"| {r['lever']} | {n['accuracy']:.4f} | {n['roc_auc']:.4f} | {n['sensitivity']:.4f} | "
              f"{n['specificity']:.4f} | {_num(n['false_call_rate_median'], '{:.1%}')} / "
              f"{_num(n['false_call_rate_p90'], '{:.1%}')} / {_num(n['false_call_rate_max'], '{:.1%}')} "
              f"({n['false_call_worst_slide']}) | {n['train_min']:.1f} |")
    print("\nPhoto batches through `malaria-cnn screen --truth`, figures over the photos counted (not referred)")
    print("| lever | batch | photos referred | parasitemia called (pooled) | true | parasitized precision | recall "
          "| per-photo error, points |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for batch, b in r["photos"].items():
            print(f"| {r['lever']} | {batch} | {b['referred']}/{b['photos']} | {_num(b['called'], '{:.2%}')} | "
                  f"{_num(b['true'], '{:.2%}')} | {_num(b['precision'])} | {_num(b['recall'])} | "
                  f"{_num(b['photo_error_pts'], '{:.2f}')} |")


if __name__ == "__main__":
    main()
