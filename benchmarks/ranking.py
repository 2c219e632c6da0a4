"""Benchmark: how well the model ranks parasites first on stains it never trained on, lever by lever, with seeds.

A review confirms the cells the model ranks highest (evaluation/review.py), so the answer for a slide rests on
whether its parasites sit near the top of the ranking. Each arm is the pipeline as a user runs it (a fresh
clone, params set, `dvc repro`, benchmarks/photos.py's `pipeline`) on the dev zip's 39 training slides, and
its final model screens every photo of both shared batches, neither of which it trained on. Reported per arm
and seed:
- the ranking AUC of parasitized against plain cells among the cells `screen` finds (a found cell is
  parasitized when it matches a parasitized box);
- the share of each 10-photo group's labelled parasites (found by the segmentation or not) among its top 1%,
  2% and 5% of cells by P(Parasitized);
- on NIH's 10 held-out slides: accuracy at 0.5, ROC AUC, and the per-slide share of uninfected cells called
  parasitized at the run's threshold (90th percentile and largest);
- the minutes `dvc repro` took.

Arms (`--arms`), each at 64 px unless it says 96: `baseline` (the defaults before 96 px became one), `hed`
(train.stain_jitter hed: jitter in stain optical density), `size96` (preprocess.image_size 96: a ring is more
pixels), `size96_hed`, `unboxed` (data.unboxed uninfected: the found cells of the photos trained on that no box
matches, platelets and debris among them, as negatives; only with --with-photos), `size96_unboxed` (both).
Cross-validation uses 3 folds to keep each run short (`--folds`); a lever counts only where it moves a figure
beyond the spread between seeds. `--ensembles` ranks by the mean score of runs already
made (an ensemble of different networks or seeds), over the same found cells. `--tta` scores the same found
cells again with runs already made, each cell by the mean over its 8 flips and quarter turns (test-time
augmentation: the views training's augmentation shows), against the same runs' single view.

With `--with-photos`, leave one stain out: each arm trains twice, on the dev zip's training slides and one
shared batch (data.sources), and is scored on the other batch, a stain it never saw.

    python benchmarks/ranking.py --work /tmp/photos-bench --seeds 42 1
    python benchmarks/ranking.py --work /tmp/photos-bench --with-photos --arms baseline size96 unboxed
    python benchmarks/ranking.py --work /tmp/photos-bench --arms baseline size96 --ensembles baseline:42+size96:42
    python benchmarks/ranking.py --work /tmp/photos-bench --arms size96 --with-photos --tta
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import photos as bench  # noqa: E402
import review as review_bench  # noqa: E402

from malaria_cnn.core.labels import POSITIVE  # noqa: E402
from malaria_cnn.evaluation import false_calls, operating_point  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402

SIZE64, SIZE96 = {"preprocess": {"image_size": 64}}, {"preprocess": {"image_size": 96}}
ARMS = {"baseline": SIZE64, "hed": {"train": {"stain_jitter": "hed"}, **SIZE64}, "size96": SIZE96,
        "size96_hed": {"train": {"stain_jitter": "hed"}, **SIZE96},
        "unboxed": {"data": {"unboxed": "uninfected"}, **SIZE64},
        "size96_unboxed": {"data": {"unboxed": "uninfected"}, **SIZE96}}
TOPS = (0.01, 0.02, 0.05)
GROUP = 10  # photos a slide


def ranking(records: list[dict]) -> dict:
    """The ranking AUC among found cells, and the share of labelled parasites in each group's top cells."""
    p = np.concatenate([r["p"] for r in records])
    y = np.concatenate([r["y"] for r in records])
    out = {"auc": float(roc_auc_score(y == POSITIVE, p))}
    for top in TOPS:
        hits = parasites = 0
        for i in range(0, len(records) - GROUP + 1, GROUP):
            group = records[i:i + GROUP]
            gp, gy = np.concatenate([r["p"] for r in group]), np.concatenate([r["y"] for r in group])
            k = int(round(top * len(gp)))
            hits += int(np.sum(gy[np.argsort(-gp, kind="stable")[:k]] == POSITIVE))
            parasites += sum(r["parasites"] for r in group)
        out[f"top{round(top * 100)}"] = hits / parasites if parasites else float("nan")
    return out


def dihedral_scorer(model, batch_size: int):
    """model_io.scorer's function, each crop scored as the mean over its 8 flips and quarter turns."""
    score = model_io.scorer(model, batch_size)

    def mean_of_views(x: np.ndarray) -> np.ndarray:
        views = [x, x[:, ::-1], x[:, :, ::-1], x[:, ::-1, ::-1]]
        views += [np.swapaxes(v, 1, 2) for v in views]
        return np.mean([score(np.ascontiguousarray(v)) for v in views], axis=0)

    return mean_of_views


def nih(model_path: Path, cells: dict, threshold: float, scorer=None) -> dict:
    model = model_io.load(model_path)
    prob = (scorer(model, 256)(cells["x"]) if scorer else model_io.parasitized_probability(model, cells["x"], 256))
    positive = cells["y"] == POSITIVE
    s = false_calls.summary(cells["y"], prob, cells["slide"], threshold)
    return {"accuracy": float(np.mean((prob >= 0.5) == positive)), "auc": float(roc_auc_score(positive, prob)),
            "false_calls_p90": s.get("false_call_rate_p90"), "false_calls_max": s.get("false_call_rate_max")}


def run_arm(work: Path, arm: str, seed: int, folds: int, train_zip: Path, held_zip: Path, photos: dict,
            with_batch: str | None = None) -> dict:
    """One arm and seed: trained on the dev zip's training slides (and `with_batch`'s photos), scored on NIH's
    held-out slides and on every batch it did not train on."""
    sections = {k: dict(v) for k, v in ARMS[arm].items()}
    train = {**sections.pop("train", {}), "seed": seed}
    nih_zip = {"source": "zip", "path": str(train_zip)}
    data = {"sources": [{**nih_zip, "name": "nih"}, bench.photo_source(with_batch)]} if with_batch else nih_zip
    data.update(sections.pop("data", {}))
    name = f"ranking_{arm}_{seed}" + (f"_with_{with_batch}" if with_batch else "")
    where, minutes = bench.pipeline(work, name, data, train, folds=folds, more=sections)
    model = where / "models" / "model.keras"
    threshold = operating_point.load(where / "models" / "threshold.json", model)
    size = sections.get("preprocess", {}).get("image_size")
    out = {"minutes": sum(minutes.values()), "nih": nih(model, bench.holdout_cells(work, held_zip, size), threshold)}
    for b in bench.BATCHES:
        if b != with_batch:
            records = review_bench.screened(work / f"{name}_{b}.pkl", str(model), list(photos[b].values()), b,
                                            threshold, None)
            out[b] = ranking(records)
    return out


def test_time_augmented(work: Path, arm: str, seed: int, held_zip: Path, photos: dict,
                        with_batch: str | None = None) -> dict:
    """A run already made (run_arm) scored again, each cell by the mean over its 8 views (dihedral_scorer), on
    NIH's held-out slides and on every batch it did not train on."""
    name = f"ranking_{arm}_{seed}" + (f"_with_{with_batch}" if with_batch else "")
    model = work / name / "models" / "model.keras"
    if not model.is_file():
        sys.exit(f"ranking: --tta scores runs already made, and {model} is not there: run without --tta first")
    threshold = operating_point.load(work / name / "models" / "threshold.json", model)
    size = ARMS[arm].get("preprocess", {}).get("image_size")
    out = {"minutes": 0.0, "nih": nih(model, bench.holdout_cells(work, held_zip, size), threshold, dihedral_scorer)}
    for b in bench.BATCHES:
        if b != with_batch:
            out[b] = ranking(review_bench.screened(work / f"{name}_{b}_tta.pkl", str(model), list(photos[b].values()),
                                                   b, threshold, None, dihedral_scorer))
            one_view = pickle.loads((work / f"{name}_{b}.pkl").read_bytes())  # the run's own, same found cells
            out[f"{b} (1 view)"] = ranking(one_view)
    return out


def ensemble(work: Path, members: list[tuple[str, int]], batch: str) -> dict:
    """The ranking by the mean P(Parasitized) of several runs' final models (arm, seed) over the same found
    cells: an ensemble of different networks, from the runs' cached scores."""
    runs = [pickle.loads((work / f"ranking_{arm}_{seed}_{batch}.pkl").read_bytes()) for arm, seed in members]
    for photos in zip(*runs):
        if len({(r["name"], len(r["p"])) for r in photos}) != 1:
            sys.exit(f"ranking: the runs {members} found different cells in {photos[0]['name']}")
    return ranking([{**photos[0], "p": np.mean([r["p"] for r in photos], axis=0)} for photos in zip(*runs)])


def _cell(r: dict, batch: str) -> str:
    if batch not in r:
        return "(trained on)"
    return f"{r[batch]['auc']:.3f}, {r[batch]['top1']:.2f}/{r[batch]['top2']:.2f}/{r[batch]['top5']:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a folder for the clones (kept: reruns reuse them)")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 1])
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--with-photos", nargs="*", choices=bench.BATCHES, metavar="BATCH",
                    help="leave one stain out: train with one shared batch (each, or those named), score the other")
    ap.add_argument("--tta", action="store_true",
                    help="score runs already made again, each cell by the mean over its 8 flips and quarter turns")
    ap.add_argument("--ensembles", nargs="+", default=[], metavar="ARM:SEED+ARM:SEED",
                    help="also rank by the mean score of these runs (already run, without --with-photos)")
    args = ap.parse_args()
    if any("unboxed" in arm for arm in args.arms) and args.with_photos is None:
        ap.error("the unboxed arm needs --with-photos (its negatives come from the photos trained on)")
    prepared = bench.prepared(args.work)
    withs = (None,) if args.with_photos is None else (args.with_photos or bench.BATCHES)
    train_zip, held_zip, photos = prepared

    def run(arm: str, seed: int, w: str | None) -> dict:
        if args.tta:
            return test_time_augmented(args.work, arm, seed, held_zip, photos, w)
        return run_arm(args.work, arm, seed, args.folds, train_zip, held_zip, photos, w)

    report = {f"{arm}" + (" (8 views)" if args.tta else "") + (f" + {w}" if w else ""):
              {seed: run(arm, seed, w) for seed in args.seeds} for arm in args.arms for w in withs}
    out = args.work / (("ranking" if args.with_photos is None else "ranking_with_photos")
                       + ("_tta" if args.tta else "") + ".json")
    out.write_text(json.dumps(report, indent=1))
    print("| arm | seed | minutes | " + " | ".join(f"{b}: AUC, top 1/2/5%" for b in bench.BATCHES)
          + " | NIH held out: accuracy, AUC, false calls p90 / max |")
    print("|---|---|---|" + "---|" * (len(bench.BATCHES) + 1))
    for arm, seeds in report.items():
        for seed, r in seeds.items():
            n = r["nih"]
            print(f"| {arm} | {seed} | {r['minutes']:.1f} | " + " | ".join(_cell(r, b) for b in bench.BATCHES) +
                  f" | {n['accuracy']:.3f}, {n['auc']:.3f}, {n['false_calls_p90']:.1%} / {n['false_calls_max']:.1%} |")
    if args.tta:
        print("\n| run | seed | scored on | 1 view: AUC, top 1/2/5% | 8 views: AUC, top 1/2/5% |")
        print("|---|---|---|---|---|")
        for arm, seeds in report.items():
            for seed, r in seeds.items():
                for b in bench.BATCHES:
                    if b in r:
                        print(f"| {arm} | {seed} | {b} | {_cell({b: r[f'{b} (1 view)']}, b)} | {_cell(r, b)} |")
    for spec in args.ensembles:
        members = [(m.split(":")[0], int(m.split(":")[1])) for m in spec.split("+")]
        print(f"| mean of {spec} | - | - | " + " | ".join(_cell({b: ensemble(args.work, members, b)}, b)
                                                         for b in bench.BATCHES) + " | - |")


if __name__ == "__main__":
    main()
