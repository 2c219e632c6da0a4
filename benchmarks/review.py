"""Benchmark: slide answers from the model alone and after a review of the flagged cells, the labels answering
for the reviewer, on slides of real smear photos and on NIH's slides, nested: no cell is answered by a rule, or
scored by a model, that saw it.

Models, from benchmarks/photos.py's work folder (made there when missing: fresh clones, `dvc repro`):
- `nih`: trained on the dev zip's 39 training slides (a lab with NIH's crops alone). Its slide rule and review
  set are fitted, as the threshold stage fits them, on its out-of-fold (OOF) cells made smear-like. Every photo
  of both shared batches is screened by it, with its stain check, as `malaria-cnn screen` would.
- `combined`: trained on those slides and both photo batches (`data.sources`). Each photo is screened by the
  model that never trained on it (its fold's model), at its batch's own point: a threshold (threshold.per_source)
  and a slide rule fitted on the batch's OOF cells of the other folds, as they are (photos are smears already).

Slides of photos: each batch's photos, in name order, cut into slides of 1, 10 and 50 photos (the 50-photo
slide is one per batch). A photo's found cells are labelled by the boxes they match (screen --truth's
matching); a slide is infected when any of its photos holds a labelled parasite, and the review's recall counts
every labelled parasite, found by the segmentation or not.

NIH: the 39 training slides, each fold's OOF cells answered by a rule fitted on the other folds' (nested), and
the 10 held-out slides scored by the final model with the rule fitted on all the OOF cells; each slide made
smear-like (a healthy slide of its uninfected cells, an infected one at 0-2%: evaluation/smear_like.py).

Also measured: the design effect between the photos of a 10-photo slide of the share the model counts, behind
evaluation/intervals.PHOTO_DESIGN_EFFECT.

    python benchmarks/review.py --work /tmp/photos-bench
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import photos as bench  # noqa: E402

from malaria_cnn.core import params  # noqa: E402
from malaria_cnn.data import stain  # noqa: E402
from malaria_cnn.evaluation import fit_rule, operating_point, oof, patients, reviewed, smear_like  # noqa: E402
from malaria_cnn.evaluation.intervals import effective_size, korn_graubard  # noqa: E402
from malaria_cnn.screening import truth  # noqa: E402
from malaria_cnn.screening.matching import match  # noqa: E402
from malaria_cnn.screening.reviewed_photos import review_slide  # noqa: E402
from malaria_cnn.screening.screen import screen  # noqa: E402
from malaria_cnn.training import model_io  # noqa: E402

SIZES = (1, 10, 50)


def fitted(y, prob, slides, smears: bool, rule_name: str | None = None):
    """(threshold, slide rule) fitted on these OOF cells as the threshold stage fits them."""
    p = params.load(ROOT / "params.yaml")
    cfg = p.threshold if rule_name is None else params.ThresholdParams(rule=rule_name)
    t = operating_point.choose(y, prob, cfg)
    rule, _ = fit_rule.choose_rule(y, prob, slides, t, p.evaluate.confidence, p.patients.min_sensitivity,
                                   p.patients.rule_out, p.patients.review_recall, p.patients.review_share, smear_like_slides=not smears)
    return t, rule


def screened(cache: Path, model_path: str, names: list[Path], batch: str, threshold: float, span,
             scorer=model_io.scorer) -> list[dict]:
    """Each photo screened by the model (scored by `scorer(model, batch_size)`): its cells' P(Parasitized), their
    labels from the boxes they match, its labelled parasites, and why it was referred ("" when counted). Cached
    in `cache`."""
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    labelled = truth.load(bench.FIELDS / batch / "annotations.json")
    model = model_io.load(model_path)
    out = []
    for photo in screen(scorer(model, 256), names, model_io.image_size(model), threshold,
                        stain_mode=model_io.stain_mode(model), stain_range=span, progress=False):
        boxes = labelled[photo.file_name]
        pairs, _ = match(photo.boxes, boxes)
        y = np.zeros(len(photo.p), int)
        for f, b in pairs:
            y[f] = int(boxes[b].kind == "parasitized")
        out.append({"name": photo.file_name, "p": np.asarray(photo.p, float), "y": y, "referred": photo.referred,
                    "parasites": sum(b.kind == "parasitized" for b in boxes)})
    cache.write_bytes(pickle.dumps(out))
    return out


def answer_photos(rule: patients.SlideRule, group: list[dict]) -> tuple[patients.Answer, patients.Answer, dict]:
    """The model's answer alone and after a labelled review for a slide of these photos, with its figures
    (screen --truth's own: reviewed_photos.review_slide)."""
    kept = [ph for ph in group if not ph["referred"]]
    if not kept:
        blank = patients.Answer(patients.REFER, group[0]["referred"], patients.Estimate(*[np.nan] * 4), 0, 0, np.nan)
        return blank, blank, {"cells": 0, "flagged": 0, "hits": 0, "parasites": sum(p["parasites"] for p in group)}
    s, alone, after, row = review_slide(rule, [(ph["p"], ph["y"], ph["parasites"]) for ph in kept])
    return alone, after, {"cells": s.cells, "flagged": s.flagged, "hits": row[1], "parasites": row[0]}


def table_row(label: str, infected: list[bool], alone: list, after: list, figures: list[dict], confidence=0.95) -> str:
    """One markdown row: slides, the model's answers alone and after review against the truth, the review's
    size, recall and detection limit."""
    infected = np.array(infected, bool)

    def tally(answers):
        a = np.array([x.answer for x in answers])
        return (f"{np.sum(infected & (a == 'infected'))}/{np.sum(infected & (a == 'refer'))}/"
                f"{np.sum(infected & (a == 'not infected'))} | {np.sum(~infected & (a == 'infected'))}/"
                f"{np.sum(~infected & (a == 'refer'))}/{np.sum(~infected & (a == 'not infected'))}")

    cells = np.array([f["cells"] for f in figures], float)
    share = 1000 * np.array([f["flagged"] for f in figures], float) / np.maximum(cells, 1)
    hits, parasites = (np.array([f[k] for f in figures], float) for k in ("hits", "parasites"))
    recall = hits.sum() / parasites.sum() if parasites.sum() else float("nan")
    low = korn_graubard(hits, parasites, confidence)[0] if (parasites > 0).sum() > 1 else float("nan")
    limits = [a.review_limit for a in after if not np.isnan(a.review_limit)]
    healthy = share[~infected]
    return (f"| {label} | {int(infected.sum())}/{int((~infected).sum())} | {int(np.median(cells)):,} | "
            f"{tally(alone)} | {tally(after)} | {np.median(share):.1f} / {np.quantile(share, 0.9):.1f} | "
            + (f"{np.median(healthy):.1f} / {np.quantile(healthy, 0.9):.1f}" if len(healthy) else "–")
            + f" | {recall:.3f} ({low:.3f}) | {np.median(limits):.3%} |" if limits else " | – |")


def photo_slides(records: list[dict], label: str) -> list[str]:
    """Table rows for slides of SIZES photos. Each photo brings the rule of the model that scored it; a slide
    is answered by its first photo's (in a run trained on photos, its photos' models are of one run)."""
    lines = []
    for size in SIZES:
        groups = [records[i:i + size] for i in range(0, len(records), size)]
        groups = [g for g in groups if len(g) == size] or [records]
        out = [answer_photos(g[0]["rule"], g) for g in groups]
        infected = [sum(ph["parasites"] for ph in g) > 0 for g in groups]
        lines.append(table_row(f"{label}, {size} photo{'s' * (size > 1)}", infected, *zip(*out)))
    return lines


def design_effects(rule, records: list[dict]) -> list[float]:
    """Per 10-photo slide: its cells over their effective count (no floor), for the share the rule counts."""
    out = []
    for i in range(0, len(records) - 9, 10):
        kept = [ph for ph in records[i:i + 10] if not ph["referred"]]
        counted = np.array([np.sum(ph["p"] >= rule.count_threshold) for ph in kept])
        cells = np.array([len(ph["p"]) for ph in kept])
        if len(kept) > 1 and counted.sum():
            out.append(float(cells.sum() / effective_size(counted, cells)))
    return out


def nih_slides(run: Path, cells: dict) -> list[str]:
    """NIH's slides made smear-like: the OOF slides nested by fold, the held-out ones by the final model."""
    scored = oof.read(run / "data" / "oof" / "predictions.csv")
    y, prob, slides, folds = scored["y"], scored["prob"], scored["slide"], scored["fold"]
    lines, alone, after, figures, infected = [], [], [], [], []
    for k in np.unique(folds):
        _, rule = fitted(y[folds != k], prob[folds != k], slides[folds != k], smears=False)
        sy, sp, ss = smear_like.resample(y[folds == k], prob[folds == k], slides[folds == k], seed=int(k))
        _part(rule, sy, sp, ss, alone, after, figures, infected)
    lines.append(table_row("NIH, 39 slides out of fold, smear-like (x2)", infected, alone, after, figures))
    _, rule = fitted(y, prob, slides, smears=False)
    model = model_io.load(run / "models" / "model.keras")
    hp = model_io.parasitized_probability(model, cells["x"], 256)
    sy, sp, ss = smear_like.resample(cells["y"], hp, cells["slide"], seed=99)
    alone, after, figures, infected = [], [], [], []
    _part(rule, sy, sp, ss, alone, after, figures, infected)
    lines.append(table_row("NIH, 10 held-out slides, smear-like (x2)", infected, alone, after, figures))
    return lines


def _part(rule, y, prob, slides, alone, after, figures, infected):
    names, first = rule.answers(prob, slides)
    then, rows = reviewed.slides(rule, y, prob, slides)
    for name, a, b, r in zip(names, first, then, rows):
        n = int(np.sum(slides == name))
        alone.append(a)
        after.append(b)
        figures.append({"cells": n, "flagged": a.flagged, "hits": r[1], "parasites": r[0]})
        infected.append(r[0] > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="benchmarks/photos.py's work folder (made if missing)")
    args = ap.parse_args()
    train_zip, held_zip, photos = bench.prepared(args.work)
    nih_run, _ = bench.pipeline(args.work, "nih", {"source": "zip", "path": str(train_zip)})
    scored = oof.read(nih_run / "data" / "oof" / "predictions.csv")
    t_nih, rule = fitted(scored["y"], scored["prob"], scored["slide"], smears=False)
    print(f"nih model: {rule.describe()}; flag limit {rule.flag_limit:.1%}, band limit {rule.band_limit:.1%}")
    final = nih_run / "models" / "model.keras"
    span = stain.StainRange.load(nih_run / "models" / "stain_range.json", final)
    header = ("| slides | infected/healthy | cells (median) | model alone: infected slides infected/refer/not | "
              "healthy slides infected/refer/not | after review: infected slides | healthy slides | flagged per 1,000 "
              "(median / p90) | on healthy slides | review recall (lower bound) | detection limit after review (median) |")
    lines = [header, "|" + "---|" * 11]
    lines += nih_slides(nih_run, bench.holdout_cells(args.work, held_zip))
    for b in bench.BATCHES:
        records = [{**r, "rule": rule} for r in screened(args.work / f"review_nih_{b}.pkl", str(final),
                                                            list(photos[b].values()), b, t_nih, span)]
        lines += photo_slides(records, f"{b}, NIH model")
        effects = design_effects(rule, records)
        print(f"design effect of the counted share between the photos of a 10-photo slide, {b}, NIH model: "
              f"median {np.median(effects):.2f}, range {min(effects):.2f}-{max(effects):.2f} ({len(effects)} slides)")
    combined = args.work / "combined"
    if (combined / "models" / "model.keras").is_file():
        for b in bench.BATCHES:
            owner = bench._held_out_photos(combined, b)
            cells = bench._oof_cells(combined, b)
            records = []
            for model_path in sorted(set(owner.values())):
                k = Path(model_path).parent.name
                use = cells["fold"] != int(k) if k.isdigit() else np.ones(len(cells["y"]), bool)
                t, own = fitted(cells["y"][use], cells["prob"][use], cells["slide"][use], smears=True, rule_name="f1")
                mine = [photos[b][n] for n in sorted(owner) if owner[n] == model_path]
                got = screened(args.work / f"review_combined_{b}_{k}.pkl", model_path, mine, b, t, None)
                records += [{**r, "rule": own} for r in got]
            records.sort(key=lambda r: r["name"])
            lines += photo_slides(records, f"{b}, combined model, own point")
            effects = design_effects(records[0]["rule"], records)
            print(f"design effect ..., {b}, combined model: median {np.median(effects):.2f}, "
                  f"range {min(effects):.2f}-{max(effects):.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
