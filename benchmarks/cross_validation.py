"""Benchmark: nested slide-grouped cross-validation of the pipeline's levers on real NIH crops.

Outer folds score: each holds out about a third of the 49 dev slides that nothing in its round
sees. Inside each round the pipeline runs as `dvc repro` would on the other slides: slide-grouped
inner folds, one model per fold (early stopping on its held-out fold), out-of-fold (OOF)
predictions, the threshold rule on them (sensitivity >= 0.95), and the shipped model (the inner
models' ensemble; for the baseline also a refit, a refit without the crops the label audit flags,
and test-time augmentation). The held-out slides are then scored once per variant: accuracy and
ROC AUC at 0.5, sensitivity and specificity at the OOF threshold, and each held-out slide's false-call
rate of uninfected cells there (median, 90th percentile and max over every round's slides). Nothing is
chosen on them.

    python benchmarks/cross_validation.py                           # every lever, 3 outer x 3 inner folds
    python benchmarks/cross_validation.py --levers baseline hed --outer 3 --inner 3
    python benchmarks/cross_validation.py --levers hed --reference benchmarks/results/cross_validation.log

--reference reads the per-round lines of an earlier run's output (same outer and inner folds) for the
variants this run does not train, so a lever can be compared fold by fold with a baseline measured
before; training is seeded and deterministic, so a rerun of the baseline gives the same lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
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
from malaria_cnn.data import cells_npz, split  # noqa: E402
from malaria_cnn.data.ingest import ingest  # noqa: E402
from malaria_cnn.data.preprocess import preprocess  # noqa: E402
from malaria_cnn.evaluation import audit, false_calls, metrics, operating_point  # noqa: E402
from malaria_cnn.training import ensemble, model_io  # noqa: E402
from malaria_cnn.training.runtime import keras  # noqa: E402
from malaria_cnn.training.train import train  # noqa: E402

DEV_ZIP = ROOT.parent / "shared" / "data" / "nih_malaria_dev.zip"

# Each lever: params changed from the committed params.yaml (the baseline).
LEVERS = {
    "baseline": {},
    "size48": {"preprocess": {"image_size": 48}},  # 0.56x the pixels: a cheaper step
    "size96": {"preprocess": {"image_size": 96}},
    "size128": {"preprocess": {"image_size": 128}},
    "hed": {"train": {"stain_jitter": "hed"}},
    "hard_labels": {"train": {"label_smoothing": 0.0}},  # the default before label smoothing was measured
    "cosine12": {"epochs": 12, "train": {"schedule": "cosine", "early_stopping": 0}},
    "wide": {"model": {"compact": {"widths": (32, 64, 128, 256)}}},
    "reseed": {"train": {"seed": 7}},  # nothing but another training seed: how far chance alone moves a row
    "batch128": {"train": {"batch_size": 128}},  # half the steps per epoch: a cheaper epoch on a CPU
    "patience4": {"train": {"early_stopping": 4}},  # folds stop 2 epochs sooner after their best
    "patience4_reseed": {"train": {"early_stopping": 4, "seed": 7}},  # the same, against reseed
    "stain_none": {"preprocess": {"stain": "none"}},  # crops as decoded, not stain-standardised (the default before)
}


def with_lever(base: params.Params, change: dict) -> params.Params:
    def apply(obj, update):
        return dataclasses.replace(obj, **{k: apply(getattr(obj, k), v) if isinstance(v, dict) else v
                                           for k, v in update.items()})
    return apply(base, change)


def load_dev(zip_path: Path, cfg: params.PreprocessParams, cache: dict) -> dict:
    """The dev zip's cells as ingest and preprocess make them with `cfg` (cached by image size and stain mode)."""
    key = (cfg.image_size, cfg.stain)
    if key not in cache:
        with tempfile.TemporaryDirectory() as tmp:
            ingest(params.DataParams(source="zip", path=str(zip_path)), f"{tmp}/raw.zip", f"{tmp}/m.csv", f"{tmp}/r.csv")
            preprocess(f"{tmp}/raw.zip", f"{tmp}/m.csv", f"{tmp}/cells.npz", f"{tmp}/rej.csv", cfg)
            cache[key] = cells_npz.load(f"{tmp}/cells.npz")
    return cache[key]


def symmetries(x: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of a square (flips and quarter turns) of a batch of crops."""
    turned = x.transpose(0, 2, 1, 3)
    return [v[:, ::a, ::b] for v in (x, turned) for a in (1, -1) for b in (1, -1)]


def scores(y: np.ndarray, prob: np.ndarray, threshold: float, slides: np.ndarray) -> dict:
    """Accuracy and ROC AUC at 0.5, sensitivity and specificity at the OOF threshold, and each held-out
    slide's false-call rate there (the slides with at least false_calls.MIN_UNINFECTED uninfected cells)."""
    positive = y == POSITIVE
    at_half = metrics.all_metrics(np.ones((1, len(y))), positive, prob, 0.5, bins=10)
    at_t = metrics.all_metrics(np.ones((1, len(y))), positive, prob, threshold, bins=10)
    _, uninfected, false = false_calls.per_slide(y, prob, slides, threshold)
    rates = false_calls.rates(uninfected, false)[uninfected >= false_calls.MIN_UNINFECTED]
    return {"accuracy": float(at_half["accuracy"][0]), "roc_auc": float(at_half["roc_auc"][0]),
            "sensitivity": float(at_t["sensitivity"][0]), "specificity": float(at_t["specificity"][0]),
            "slide_rates": [float(r) for r in rates]}


def one_round(p: params.Params, x, y, slides, rest, test, inner: int, extras: bool) -> dict[str, dict]:
    """The pipeline on the `rest` cells, scored on the `test` cells: {variant: scores}."""
    names = np.array([f"c{i}" for i in range(len(rest))])
    fold = split.assign_folds(y[rest], slides[rest], np.full(len(rest), "train"), inner, p.split.seed)
    models, prob_oof, best = [], np.zeros(len(rest)), []
    start = time.perf_counter()
    for k in range(inner):
        fit, held = fold != k, fold == k
        model, history = train(p, (x[rest][fit], y[rest][fit]), (x[rest][held], y[rest][held]))
        prob_oof[held] = model_io.parasitized_probability(model, x[rest][held], 256)
        models.append(model)
        best.append(int(np.argmin(history["val_loss"])) + 1)
    minutes = (time.perf_counter() - start) / 60
    threshold = operating_point.choose(y[rest], prob_oof, p.threshold)
    shipped = ensemble.average(models)
    held = slides[test]
    out = {"ensemble": {**scores(y[test], model_io.parasitized_probability(shipped, x[test], 256), threshold, held),
                        "train_min": minutes}}
    if extras:
        tta = np.mean([model_io.parasitized_probability(shipped, v, 256) for v in symmetries(x[test])], axis=0)
        out["ensemble + TTA"] = scores(y[test], tta, threshold, held)
        epochs = max(1, int(np.round(np.median(best))))
        refit = dataclasses.replace(p, epochs=epochs)
        model, _ = train(refit, (x[rest], y[rest]), None)
        out["refit"] = scores(y[test], model_io.parasitized_probability(model, x[test], 256), threshold, held)
        flagged = audit.label_issues(y[rest], prob_oof)
        keep = ~np.isin(names, names[flagged])
        model, _ = train(refit, (x[rest][keep], y[rest][keep]), None)
        out["refit without label issues"] = {**scores(y[test], model_io.parasitized_probability(model, x[test], 256),
                                                      threshold, held), "flagged": int(len(flagged))}
    keras.backend.clear_session()
    return out


ROUND = re.compile(r"^outer (\d+)/(\d+) (.+?)\s+acc ([\d.]+) auc ([\d.]+) sens ([\d.]+) spec ([\d.]+)"
                   r"(?:\s+\(([\d.]+) min of training\))?(?:\s+false calls by slide \[([\d., ]*)\])?")


def read_reference(log: Path, outer: int) -> dict[str, list[dict]]:
    """{variant: per-round scores} from the lines an earlier run printed (see one_round's print)."""
    out: dict[str, list[dict]] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = ROUND.match(line)
        if m and int(m[2]) == outer:
            s = dict(zip(("accuracy", "roc_auc", "sensitivity", "specificity"), map(float, m.group(4, 5, 6, 7))))
            rows = out.setdefault(m[3].strip(), [])
            if len(rows) == int(m[1]) - 1:  # each round once, in order
                rates = {"slide_rates": [float(v) for v in m[9].split(",") if v.strip()]} if m[9] is not None else {}
                rows.append({**s, **({"train_min": float(m[8])} if m[8] else {}), **rates})
    return {name: rows for name, rows in out.items() if len(rows) == outer}


def slide_rates(rows: list[dict]) -> str:
    """Median / 90th percentile / max of the held-out slides' false-call rates, pooled over the rounds."""
    if any("slide_rates" not in r for r in rows):
        return "-"
    rates = np.concatenate([r["slide_rates"] for r in rows])
    return " / ".join(f"{v:.1%}" for v in (np.median(rates), np.percentile(rates, 90), rates.max())) + \
        f" ({len(rates)} slides)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--outer", type=int, default=3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    ap.add_argument("--reference", type=Path, help="an earlier run's output: its rounds of the variants not run now")
    args = ap.parse_args()
    if not args.zip.is_file():
        sys.exit(f"error: {args.zip} not found (the NIH dev crops; see ../shared/data/README.md)")

    base, cache = params.load(ROOT / "params.yaml"), {}
    results: dict[str, list[dict]] = {}
    if args.reference:
        earlier = read_reference(args.reference, args.outer)
        results = {name: rows for name, rows in earlier.items() if name.split(":")[0] not in args.levers}
        print(f"from {args.reference}: {', '.join(results) or 'nothing'}", flush=True)
    y_all = slides_all = None
    for lever in args.levers:
        p = with_lever(base, LEVERS[lever])
        arrays = load_dev(args.zip, p.preprocess, cache)
        x, y, slides = arrays["x"], arrays["y"], arrays["slide"]
        y_all, slides_all = y, slides
        outer = StratifiedGroupKFold(n_splits=args.outer, shuffle=True, random_state=base.split.seed)
        for r, (rest, test) in enumerate(outer.split(np.zeros(len(y)), y, slides)):
            got = one_round(p, x, y, slides, rest, test, args.inner, extras=lever == "baseline")
            for variant, s in got.items():
                name = lever if variant == "ensemble" else f"{lever}: {variant}"
                results.setdefault(name, []).append(s)
                print(f"outer {r + 1}/{args.outer} {name:38} acc {s['accuracy']:.4f} auc {s['roc_auc']:.4f} "
                      f"sens {s['sensitivity']:.4f} spec {s['specificity']:.4f}"
                      + (f"  ({s['train_min']:.1f} min of training)" if "train_min" in s else "")
                      + f"  false calls by slide [{', '.join(f'{v:.4f}' for v in s['slide_rates'])}]", flush=True)

    print(f"\n{len(y_all):,} crops, {len(set(slides_all))} slides; {args.outer} outer x {args.inner} inner "
          f"slide-grouped folds; mean ± sd over the outer folds (held-out slides); in brackets the change against the "
          f"baseline and the outer folds where the variant scored higher")
    print("| lever | accuracy | ROC AUC | sensitivity at OOF threshold | specificity | false calls per held-out slide: "
          "median / p90 / max | training min / round |")
    print("|---|---|---|---|---|---|---|")
    base_rows = results.get("baseline")
    for name, rows in results.items():
        def cell(key):
            v = np.array([r[key] for r in rows])
            text = f"{v.mean():.4f} ± {v.std():.4f}"
            if base_rows and name != "baseline":  # to the 4 decimals of the log a --reference is read from
                d = np.round(v, 4) - np.round([r[key] for r in base_rows], 4)
                text += f" ({d.mean():+.4f}, {int(np.sum(d > 0))}/{len(d)})"
            return text
        minutes = f"{np.mean([r['train_min'] for r in rows]):.1f}" if "train_min" in rows[0] else "-"
        print(f"| {name} | {cell('accuracy')} | {cell('roc_auc')} | {cell('sensitivity')} | {cell('specificity')} "
              f"| {slide_rates(rows)} | {minutes} |")

if __name__ == "__main__":
    main()
