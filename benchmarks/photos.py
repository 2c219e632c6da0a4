"""Benchmark: training on a lab's own labelled photos, beside NIH's crops, and fine-tuning the NIH model on them.

Every arm is the pipeline run as a user runs it: a fresh clone of this repository, params set, `dvc repro`.
The NIH dev zip is cut by slide, once, into `nih_train.zip` (39 slides) and `nih_holdout.zip` (10 slides no
arm trains on). The photos are the shared pale (`iml_malaria`) and dark (`iml_malaria_dark`) batches.

- `nih`: data.source zip, nih_train.zip: the model trained on NIH's crops alone.
- `combined`: data.sources [nih_train.zip, the pale photos, the dark photos], every photo its own slide.
  Its photos are also scored at an operating point of their own batch's (`<batch>_own_<rule>`): a threshold
  by that rule (threshold.per_source) and a slide rule, chosen on that batch's out-of-fold cells alone, nested
  (fold k's model at a point chosen on the other folds' cells), as the threshold stage's `by_source` does.
- `combined_unweighted`: `combined` with train.class_weights false (the effect of the class weights, with
  photos at 1-2% parasitized beside NIH's crops at 60%).
- `combined_unboxed`: `combined_unweighted` with data.unboxed uninfected: the photos' found cells that no box
  matches (debris, clumps, cells cut by the edge, which screen meets and counts) trained on as negatives.
- `finetune`: the `nih` arm's model, fine-tuned (train.init_from) on one batch's photos (--batch).
- `finetune_with_nih`: the same, on nih_train.zip's crops as well as the batch's photos.
- `finetune_with_nih_slow`: the same at a third of the fine-tuning rate (train.finetune.learning_rate 3e-5).

A photo is scored only by a model that never trained on it: in a run that trained on photos, the photos of
cross-validation fold k by fold k's model, and the test split's photos by the final model; the `nih` arm's
model scores every photo. Scoring is `malaria-cnn screen --truth`'s own (screening.screen, truth.score_photo):
the photo is segmented, every found cell is scored at the run's out-of-fold threshold, found cells are paired
with the labelled boxes; parasitized-cell recall and precision count every found cell, unlabelled ones and
white cells included. Each photo is also answered as a slide of its own by the rule in use (infected / not
infected / refer), beside its truth (healthy: no parasitized box). No stain check (`stain_range`) is applied, so every photo counts: the figures measure
the cells, not the referral. NIH's side: the 10 held-out slides' crops, scored by each arm's final model (and
by the `nih` arm's fold models, and by the `nih` arm retrained with other seeds (--nih-seeds): the noise of a
retrained model). The finetune arm also scores the NIH model itself at the batch's own nested point
(`nih_model_own_<rule>`): what a lab gets from labelled photos without training.

    python benchmarks/photos.py --work /tmp/photos-bench                    # all arms (about 100 min on 2 cores)
    python benchmarks/photos.py --work /tmp/photos-bench --arms nih finetune --batch iml_malaria_dark
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
FIELDS = ROOT.parent / "shared" / "data" / "fields"
BATCHES = ("iml_malaria", "iml_malaria_dark")
HOLDOUT_SLIDES = 10

from measure import DEV_ZIP  # noqa: E402

from malaria_cnn.core import params  # noqa: E402
from malaria_cnn.core.labels import CLASS_NAMES, POSITIVE  # noqa: E402
from malaria_cnn.data import cells_npz, split  # noqa: E402
from malaria_cnn.data.ingest import ingest  # noqa: E402
from malaria_cnn.data.preprocess import preprocess  # noqa: E402
from malaria_cnn.data.slides import slide_of  # noqa: E402
from malaria_cnn.evaluation import fit_rule, metrics, operating_point, patients  # noqa: E402
from malaria_cnn.screening import truth  # noqa: E402
from malaria_cnn.screening.report import PARASITIZED  # noqa: E402
from malaria_cnn.screening.screen import screen  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402


def cut_dev_zip(work: Path, seed: int = 7) -> tuple[Path, Path]:
    """nih_train.zip and nih_holdout.zip: the dev zip's slides, HOLDOUT_SLIDES of them held out (seeded)."""
    train, held = work / "nih_train.zip", work / "nih_holdout.zip"
    if train.is_file() and held.is_file():
        return train, held
    with zipfile.ZipFile(DEV_ZIP) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(".png")]
        slides = sorted({slide_of(n) for n in names if slide_of(n)})
        out = set(np.random.default_rng(seed).choice(slides, HOLDOUT_SLIDES, replace=False))
        with zipfile.ZipFile(train, "w") as a, zipfile.ZipFile(held, "w") as b:
            for n in names:
                (b if slide_of(n) in out else a).writestr(n, zf.read(n))
    return train, held


def pipeline(work: Path, arm: str, data: dict, train: dict | None = None, folds: int = 5,
             more: dict | None = None) -> tuple[Path, dict]:
    """A fresh clone of this repository with `data` (and `train`, and `more`: {section: params}) params set,
    reproduced; its folder and the minutes taken (whole run, and one train stage timed apart)."""
    where = work / arm
    done = where / "models" / "model.keras"
    timing = where / "timing.json"
    if done.is_file() and timing.is_file():
        return where, json.loads(timing.read_text())
    subprocess.run(["rm", "-rf", str(where)], check=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
    p = yaml.safe_load((where / "params.yaml").read_text())
    p["data"].update(data)
    p["train"].update(train or {})
    for section, values in (more or {}).items():
        p[section].update(values)
    p["cv"]["folds"] = folds
    params.from_dict(p)  # one line if a key is wrong, before any work
    (where / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def repro(*targets: str) -> float:
        start = time.perf_counter()
        subprocess.run(["dvc", "repro", *targets], cwd=where, env=env, check=True, stdout=subprocess.DEVNULL)
        return (time.perf_counter() - start) / 60

    minutes = {"to_split": repro("split"), "train_0": repro("train@0")}
    minutes["rest"] = repro()
    timing.write_text(json.dumps(minutes))
    return where, minutes


def _threshold(run: Path) -> float:
    return operating_point.load(run / "models" / "threshold.json", run / "models" / "model.keras")


def _held_out_photos(run: Path, batch: str) -> dict[str, str]:
    """{photo name: the model that never saw it} for `batch`'s photos in a run: fold k's model for the photos
    of fold k, the final model for the test split's. With several sources a photo's slide is `<batch>/<name>`."""
    owner = {}
    with open(run / "data" / "split" / "splits.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            source, _, name = row["slide"].rpartition("/")
            if source not in (batch, ""):
                continue
            owner[name] = str(run / "models" / "model.keras" if row["split"] == "test"
                              else run / "models" / "folds" / row["fold"] / "model.keras")
    return owner


def screen_photos(assignments: dict[str, list[Path]], batch: str, threshold: float | dict[str, float],
                  rule_from: Path | dict) -> dict:
    """Each model screens its photos of `batch`; the photos' scores pooled (truth.summarise) with the pooled
    parasitemia (called / found against labelled parasitized / labelled), the same corrected by the run's
    slide rule (models/slide_rule.json of `rule_from`, from its out-of-fold error rates: what `screen` reports
    for a slide of these photos; or {model: its rule}), and the worst photo's error."""
    labelled = truth.load(FIELDS / batch / "annotations.json")
    rules = rule_from if isinstance(rule_from, dict) else None
    if rules is None:
        rule = patients.load(rule_from / "models" / "slide_rule.json", rule_from / "models" / "model.keras")
    scores, counted, cells, uncertain, corrected_called = {}, 0, 0, 0, 0.0
    answers: Counter = Counter()  # (the rule's answer for the photo alone, its truth)
    for model_path, photos in assignments.items():
        model = model_io.load(model_path.partition("::")[0])  # "path::k": the model at fold k's point
        size, mode = model_io.image_size(model), model_io.stain_mode(model)
        at = threshold[model_path] if isinstance(threshold, dict) else threshold
        if rules is not None:
            rule = rules[model_path]
        mine = [0, 0, 0]  # this model's counted, cells, uncertain
        for photo in screen(model_io.scorer(model, 256), photos, size, at, stain_mode=mode, progress=False):
            called = np.array([label == PARASITIZED for label in photo.labels], bool)
            scores[photo.file_name] = truth.score_photo(photo.boxes, called, labelled[photo.file_name])
            here = rule.slide(photo.p, photos=1)
            mine = [a + b for a, b in zip(mine, (here.counted, here.cells, here.uncertain))]
            sick = scores[photo.file_name].parasitized_labelled > 0  # each photo answered as a slide of its own
            answers[(rule.answer(here).answer, "infected" if sick else "healthy")] += 1
        counted, cells, uncertain = counted + mine[0], cells + mine[1], uncertain + mine[2]
        if rules is not None:  # each model's photos corrected by its own rule, weighed by their cells
            corrected_called += rule.answer(patients.Slide(mine[1], mine[0], mine[2], 0)).estimate.corrected * mine[1]
    s = truth.summarise(scores)
    s["photo_answers"] = {f"{truth_} {answer}": n for (answer, truth_), n in sorted(answers.items())}
    s["pooled_called"] = s["parasitized_called"] / max(1, s["found"])
    s["pooled_true"] = s["parasitized_labelled"] / max(1, s["labelled"])
    s["pooled_relative_error"] = abs(s["pooled_called"] - s["pooled_true"]) / s["pooled_true"]
    if rules is None:
        s["pooled_corrected"] = float(rule.answer(patients.Slide(cells, counted, uncertain, 0)).estimate.corrected)
    else:
        s["pooled_corrected"] = corrected_called / max(1, cells)
    s["pooled_corrected_relative_error"] = abs(s["pooled_corrected"] - s["pooled_true"]) / s["pooled_true"]
    worst = max(scores, key=lambda n: scores[n].parasitemia_error or 0)
    s["worst_photo"] = {"name": worst, "abs_error": scores[worst].parasitemia_error,
                        "called": scores[worst].parasitized_called, "found": scores[worst].found,
                        "true": scores[worst].parasitized_labelled}
    s.pop("per_photo")
    return s


def _oof_cells(run: Path, batch: str) -> dict[str, np.ndarray]:
    """The run's out-of-fold cells of `batch` (y, prob, slide, fold), as the threshold stage reads them."""
    with open(run / "data" / "oof" / "predictions.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["slide"].startswith(batch + "/") or "/" not in r["slide"]]
    return {"y": np.array([CLASS_NAMES.index(r["label"]) for r in rows]),
            "prob": np.array([float(r["p_parasitized"]) for r in rows]),
            "slide": np.array([r["slide"] for r in rows]), "fold": np.array([int(r["fold"]) for r in rows])}


def _cells_scored_by(run: Path, batch: str, model_path: str) -> dict[str, np.ndarray]:
    """The same cells of `batch` as `_oof_cells`, scored instead by another model (one that saw none of them)."""
    arrays = cells_npz.load(run / "data" / "processed" / "cells.npz")
    assigned, fold = split.read(run / "data" / "split" / "splits.csv", arrays["filename"])
    sel = (assigned != "test") & np.array([s.startswith(batch + "/") or "/" not in s for s in arrays["slide"]])
    prob = model_io.parasitized_probability(model_io.load(model_path), arrays["x"][sel], 256)
    return {"y": arrays["y"][sel], "prob": prob, "slide": arrays["slide"][sel], "fold": fold[sel]}


def per_source_points(cells: dict[str, np.ndarray], owner: dict[str, str], rule: str) -> tuple[dict, dict]:
    """({model: threshold}, {model: slide rule}) chosen as the threshold stage chooses a source's own
    (threshold.per_source `rule`, then its slide rule) on one batch's out-of-fold `cells` alone: for fold k's
    model, on the batch's cells of the other folds (nested: no photo that model scores helped choose them);
    for the final model, on all of them."""
    y, prob, slides, fold = cells["y"], cells["prob"], cells["slide"], cells["fold"]
    p = params.load(ROOT / "params.yaml")
    cfg = dataclasses.replace(p.threshold, rule=rule)
    thresholds, rules = {}, {}
    for model in set(owner.values()):
        k = model.rpartition("::")[2] if "::" in model else Path(model).parent.name  # "path::k": fold k's photos
        use = fold != int(k) if k.isdigit() else np.ones(len(y), bool)
        thresholds[model] = operating_point.choose(y[use], prob[use], cfg)
        rules[model], _ = fit_rule.choose_rule(y[use], prob[use], slides[use], thresholds[model],
                                               p.evaluate.confidence, p.patients.min_sensitivity, p.patients.rule_out,
                                               p.patients.review_recall, p.patients.review_share, smear_like_slides=False)
    return thresholds, rules


def holdout_cells(work: Path, held: Path, image_size: int | None = None) -> dict:
    """The held-out NIH slides' crops, as ingest and preprocess make them with the committed params (at
    `image_size` when given)."""
    p = params.load(ROOT / "params.yaml")
    size = image_size or p.preprocess.image_size
    cache = work / f"holdout_cells_{size}.npz"
    if not cache.is_file():
        ingest(params.DataParams(source="zip", path=str(held)), work / "h.zip", work / "h.csv", work / "hr.csv")
        preprocess(work / "h.zip", work / "h.csv", cache, work / "hp.csv",
                   dataclasses.replace(p.preprocess, image_size=size))
    return cells_npz.load(cache, ("x", "y", "slide"))


def nih_figures(model_path: Path, cells: dict, threshold: float) -> dict:
    model = model_io.load(model_path)
    prob = model_io.parasitized_probability(model, cells["x"], 256)
    positive = cells["y"] == POSITIVE
    m = metrics.all_metrics(np.ones((1, len(prob))), positive, prob, threshold, bins=10)
    half = metrics.all_metrics(np.ones((1, len(prob))), positive, prob, 0.5, bins=10)
    correct = (prob >= 0.5) == positive
    per_slide = {s: float(correct[cells["slide"] == s].mean()) for s in np.unique(cells["slide"])}
    worst = min(per_slide, key=per_slide.get)
    return {"accuracy": float(half["accuracy"][0]), "roc_auc": float(m["roc_auc"][0]),
            "sensitivity": float(m["sensitivity"][0]), "specificity": float(m["specificity"][0]),
            "worst_slide": worst, "worst_slide_accuracy": per_slide[worst]}


def _line(name: str, s: dict) -> str:
    p = s["parasitized"]
    w = s["worst_photo"]
    return (f"  {name:<28} photos {s['photos']:>3}  parasitized recall {p['recall']:.3f} "
            f"({s['parasitized_hits']}/{s['parasitized_labelled']}), precision {p['precision']:.3f} "
            f"({s['parasitized_hits']}/{s['parasitized_called']}); pooled parasitemia {s['pooled_called']:.2%} "
            f"vs {s['pooled_true']:.2%} true ({s['pooled_relative_error']:.0%} off), corrected "
            f"{s['pooled_corrected']:.2%} ({s['pooled_corrected_relative_error']:.0%} off); worst photo {w['name']} "
            f"{w['called']}/{w['found']} called vs {w['true']} true; each photo alone: "
            + ", ".join(f"{k} {n}" for k, n in s["photo_answers"].items()))


def photo_source(batch: str) -> dict:
    """A `data.sources` entry for one shared batch of labelled photos, every photo its own slide."""
    return {"source": "photos", "path": str(FIELDS / batch), "boxes": str(FIELDS / batch / "annotations.json"),
            "name": batch}


def prepared(work: Path) -> tuple[Path, Path, dict[str, dict[str, Path]]]:
    """(nih_train.zip, nih_holdout.zip, {batch: {photo name: path}}) in `work`; exits with one line when the
    dev zip or the labelled photos are missing."""
    if not DEV_ZIP.is_file() or not all((FIELDS / b / "annotations.json").is_file() for b in BATCHES):
        sys.exit(f"error: needs {DEV_ZIP} and the labelled photos in {FIELDS}")
    work.mkdir(parents=True, exist_ok=True)
    train_zip, held_zip = cut_dev_zip(work)
    return train_zip, held_zip, {b: {p.name: p for p in sorted((FIELDS / b).glob("*.JPG"))} for b in BATCHES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a folder for the clones and data (kept: reruns reuse it)")
    ap.add_argument("--arms", nargs="+", default=["nih", "combined", "combined_unweighted", "combined_unboxed",
                                                  "finetune", "finetune_with_nih", "finetune_with_nih_slow"])
    ap.add_argument("--batch", default="iml_malaria_dark", choices=BATCHES, help="the finetune arm's photos")
    ap.add_argument("--finetune-folds", type=int, default=3)
    ap.add_argument("--nih-seeds", nargs="*", type=int, default=[1, 2],
                    help="the nih arm again with these train.seed values (the seed noise of NIH's accuracy)")
    ap.add_argument("--own-rules", nargs="*", default=["f1", "count", "sensitivity"],
                    help="each batch also scored at its own threshold and slide rule by these threshold rules, nested")
    args = ap.parse_args()
    train_zip, held_zip, photos = prepared(args.work)
    cells = holdout_cells(args.work, held_zip)
    report: dict = {}

    nih_run, minutes = pipeline(args.work, "nih", {"source": "zip", "path": str(train_zip)})
    t_nih = _threshold(nih_run)
    report["nih"] = {"minutes": minutes, "threshold": t_nih,
                     "nih_holdout": nih_figures(nih_run / "models" / "model.keras", cells, t_nih),
                     "nih_holdout_fold_models": [nih_figures(nih_run / "models" / "folds" / str(k) / "model.keras",
                                                             cells, t_nih) for k in range(5)]}
    final = str(nih_run / "models" / "model.keras")
    for seed in args.nih_seeds:  # the same run with another training seed: the noise of NIH's held-out accuracy
        run, _ = pipeline(args.work, f"nih_seed{seed}", {"source": "zip", "path": str(train_zip)}, {"seed": seed})
        report["nih"].setdefault("nih_holdout_other_seeds", {})[seed] = nih_figures(
            run / "models" / "model.keras", cells, _threshold(run))
    for b in BATCHES:
        report["nih"][b] = screen_photos({final: list(photos[b].values())}, b, t_nih, nih_run)

    def grouped(owner: dict[str, str], batch: str) -> dict[str, list[Path]]:
        """{model: its photos of `batch`} from {photo name: model}."""
        out: dict[str, list[Path]] = {}
        for name, model in owner.items():
            out.setdefault(model, []).append(photos[batch][name])
        return out

    def held_out(run: Path, batch: str, threshold: float) -> dict:
        """The run's held-out figures on `batch` at its pooled point, the nih model's on the same photos, and the
        run's at the batch's own nested point by each of --own-rules."""
        owner = _held_out_photos(run, batch)
        by_model = grouped(owner, batch)
        out = {batch: screen_photos(by_model, batch, threshold, run),
               f"{batch}_nih_model": screen_photos({final: [photos[batch][n] for n in owner]}, batch, t_nih, nih_run)}
        for rule in args.own_rules:
            out[f"{batch}_own_{rule}"] = screen_photos(by_model, batch,
                                                       *per_source_points(_oof_cells(run, batch), owner, rule))
        return out

    combined = [{"source": "zip", "path": str(train_zip), "name": "nih"}, *map(photo_source, BATCHES)]
    for arm, data, train in (("combined", {}, {}), ("combined_unweighted", {}, {"class_weights": False}),
                             ("combined_unboxed", {"unboxed": "uninfected"}, {"class_weights": False})):
        if arm in args.arms:
            run, minutes = pipeline(args.work, arm, {"sources": combined, **data}, train)
            t = _threshold(run)
            report[arm] = {"minutes": minutes, "threshold": t,
                           "nih_holdout": nih_figures(run / "models" / "model.keras", cells, t)}
            for b in BATCHES:
                report[arm].update(held_out(run, b, t))

    batch_only = {"source": "photos", **{k: v for k, v in photo_source(args.batch).items() if k != "name"}}
    with_nih = {"sources": [combined[0], photo_source(args.batch)]}
    slow = {"finetune": {"learning_rate": 3e-5}}
    for arm, data, train in (("finetune", batch_only, {}), ("finetune_with_nih", with_nih, {}),
                             ("finetune_with_nih_slow", with_nih, slow)):
        if arm in args.arms:
            run, minutes = pipeline(args.work, f"{arm}_{args.batch}", data, {"init_from": final, **train},
                                    folds=args.finetune_folds)
            t = _threshold(run)
            report[arm] = {"batch": args.batch, "minutes": minutes, "threshold": t,
                           "nih_holdout": nih_figures(run / "models" / "model.keras", cells, t)}
            report[arm].update(held_out(run, args.batch, t))
            if arm == "finetune":  # the NIH model itself at the batch's own point: a threshold and rule, no training
                as_nih = _cells_scored_by(run, args.batch, final)
                owner = _held_out_photos(run, args.batch)
                nih_owner = {name: f"{final}::{Path(m).parent.name}" for name, m in owner.items()}
                for rule in args.own_rules:
                    report[arm][f"nih_model_own_{rule}"] = screen_photos(
                        grouped(nih_owner, args.batch), args.batch, *per_source_points(as_nih, nih_owner, rule))

    (args.work / "report.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"NIH holdout: {len(cells['y'])} crops of {HOLDOUT_SLIDES} slides no arm trained on")
    for arm, r in report.items():
        m = r["minutes"]
        print(f"{arm}: dvc repro {sum(m.values()):.1f} min (one train stage {m['train_0']:.1f} min), "
              f"threshold {r['threshold']:.3f}")
        h = r["nih_holdout"]
        print(f"  NIH holdout: accuracy {h['accuracy']:.3f} (worst slide {h['worst_slide']} "
              f"{h['worst_slide_accuracy']:.3f}), ROC AUC {h['roc_auc']:.3f}, sensitivity "
              f"{h['sensitivity']:.3f}, specificity {h['specificity']:.3f}")
        if arm == "nih":
            acc = [f["accuracy"] for f in r["nih_holdout_fold_models"]]
            print(f"  NIH holdout, the 5 fold models: accuracy {min(acc):.3f}-{max(acc):.3f}")
            for seed, f in r.get("nih_holdout_other_seeds", {}).items():
                print(f"  NIH holdout, trained with train.seed {seed}: accuracy {f['accuracy']:.3f} (worst slide "
                      f"{f['worst_slide']} {f['worst_slide_accuracy']:.3f})")
        for key, s in r.items():
            if isinstance(s, dict) and "parasitized" in s:
                print(_line(key, s))


if __name__ == "__main__":
    main()
