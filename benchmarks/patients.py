"""Benchmark: patient-level answers (infected / not infected / refer) on slides the rule never saw.

Nested slide-grouped cross-validation on the 49 dev slides, as benchmarks/cross_validation.py runs it:
inside each outer round the pipeline runs on the other slides (inner fold models, their out-of-fold
scores, the cell threshold, the slide rule), and the held-out slides are scored by the shipped model
(the inner models' ensemble). Printed: the slide-level answers per round and pooled, with the held-out
slides as they are (about 70 crops each), subsampled to 30 cells and pooled to 1,000 (cells drawn with
replacement from the slide's own, to stand in for a slide screened more thoroughly); and how far the
ensemble's calibration is from the fold models' (the inner fold models scored on the held-out slides).

    python benchmarks/patients.py                      # 3 outer x 3 inner folds; trains 9 models (~10 min)
    python benchmarks/patients.py --scores /tmp/s.npz  # keep the scores; a second run reads them back

Nothing is chosen on the held-out slides.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cross_validation import DEV_ZIP, load_dev  # noqa: E402

from malaria_cnn.core import params  # noqa: E402
from malaria_cnn.core.labels import POSITIVE  # noqa: E402
from malaria_cnn.data import split  # noqa: E402
from malaria_cnn.evaluation import fit_rule, operating_point, parasitemia, patients  # noqa: E402
from malaria_cnn.evaluation.intervals import effective_size  # noqa: E402
from malaria_cnn.evaluation.parasitemia import ErrorRates  # noqa: E402


def nested_scores(zip_path: Path, outer: int, inner: int) -> dict[str, np.ndarray]:
    """Per cell: label, slide, outer round, inner fold, the inner OOF score (of the round it is not held out
    in, one row per (round, cell) for the rest cells), the ensemble's and each fold model's held-out scores."""
    from malaria_cnn.training import ensemble, model_io
    from malaria_cnn.training.runtime import keras
    from malaria_cnn.training.train import train

    p = params.load(ROOT / "params.yaml")
    arrays = load_dev(zip_path, p.preprocess, {})
    x, y, slides = arrays["x"], arrays["y"], arrays["slide"]
    n = len(y)
    out = {"y": y, "slide": slides, "round": np.zeros(n, int), "ensemble": np.zeros(n),
           "folds_test": np.zeros((n, inner)), "oof": np.full((outer, n), np.nan), "inner_fold": np.full((outer, n), -1)}
    splitter = StratifiedGroupKFold(n_splits=outer, shuffle=True, random_state=p.split.seed)
    for r, (rest, test) in enumerate(splitter.split(np.zeros(n), y, slides)):
        start = time.perf_counter()
        fold = split.assign_folds(y[rest], slides[rest], np.full(len(rest), "train"), inner, p.split.seed)
        models = []
        for k in range(inner):
            fit, held = fold != k, fold == k
            model, _ = train(p, (x[rest][fit], y[rest][fit]), (x[rest][held], y[rest][held]))
            out["oof"][r, rest[held]] = model_io.parasitized_probability(model, x[rest][held], 256)
            out["folds_test"][test, k] = model_io.parasitized_probability(model, x[test], 256)
            models.append(model)
        out["inner_fold"][r, rest] = fold
        out["ensemble"][test] = model_io.parasitized_probability(ensemble.average(models), x[test], 256)
        out["round"][test] = r
        keras.backend.clear_session()
        print(f"outer {r + 1}/{outer}: {len(set(slides[test]))} held-out slides scored "
              f"({(time.perf_counter() - start) / 60:.1f} min)", flush=True)
    return out


def resampled(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, cells: int | None, rng: np.random.Generator):
    """Each slide's cells as they are (None), `cells` of them drawn without replacement (fewer than it has),
    or drawn with replacement (more)."""
    if cells is None:
        return y, prob, slides
    picks = []
    for s in np.unique(slides):
        own = np.flatnonzero(slides == s)
        picks.append(rng.choice(own, cells, replace=cells > len(own)))
    i = np.concatenate(picks)
    return y[i], prob[i], slides[i]


def rates(y: np.ndarray, prob: np.ndarray, slides: np.ndarray, threshold: float) -> tuple[float, float]:
    """Pooled (sensitivity, false-call rate) at `threshold`."""
    r = ErrorRates.measure(y, prob, slides, threshold)
    return r.sensitivity, r.false_call_rate


def true_shares(y: np.ndarray, slides: np.ndarray) -> np.ndarray:
    _, index = np.unique(slides, return_inverse=True)
    return np.bincount(index, weights=y == POSITIVE) / np.bincount(index)


def figures(rows: list[tuple], confidence: float) -> dict:
    """Slide metrics over every round's held-out slides, and how often a slide's interval holds its true share."""
    infected = np.concatenate([patients.infected_slides(y, s) for y, s, _ in rows])
    answers = [a for _, _, ans in rows for a in ans]
    shares = np.concatenate([true_shares(y, s) for y, s, _ in rows])
    low = np.array([a.estimate.lower for a in answers])
    high = np.array([a.estimate.upper for a in answers])
    m = patients.slide_metrics(infected, [a.answer for a in answers], confidence)
    m["covered"] = float(np.mean((low <= shares + 1e-12) & (shares <= high + 1e-12)))
    m["healthy_with_0"] = float(np.mean(low[~infected] == 0)) if (~infected).any() else float("nan")
    return m


def cell(m: dict, name: str) -> str:
    v, lo, hi = (m[f"slide_{name}{s}"] for s in ("", "_ci_lower", "_ci_upper"))
    return "n/a" if v is None else f"{v:.3f} ({lo:.3f}-{hi:.3f})"


def pooled_line(r: int, y: np.ndarray, prob: np.ndarray, slides: np.ndarray, rule: patients.SlideRule) -> str:
    names, answers = rule.answers(prob, slides)
    kept = np.isin(slides, names[[a.answer != patients.REFER for a in answers]])
    _, cells, called = patients.counts(prob[kept], slides[kept], rule.count_threshold)
    e = parasitemia.estimate(int(called.sum()), int(cells.sum()), rule.rates, rule.confidence,
                             effective_size(called, cells))
    true = float(np.mean(y[kept] == POSITIVE))
    return (f"| {r + 1} | {true:.2%} | {e.called:.2%} | {e.corrected:.2%} ({e.lower:.2%}-{e.upper:.2%}) | "
            f"{e.corrected / true:.2f} |")


def report(s: dict, seed: int, rule_out: str | None = None) -> None:
    y, slides, rounds, confidence = s["y"], s["slide"], s["round"], 0.95
    p = params.load(ROOT / "params.yaml")
    rng = np.random.default_rng(seed)
    folds = s["folds_test"].shape[1]
    table: dict[str, list] = {}
    calibration, pooled = [], []
    for r in range(s["oof"].shape[0]):
        rest, test = ~np.isnan(s["oof"][r]), rounds == r
        oof = s["oof"][r][rest]
        threshold = operating_point.choose(y[rest], oof, p.threshold)
        rule, chosen = fit_rule.choose_rule(y[rest], oof, slides[rest], threshold, confidence,
                                            p.patients.min_sensitivity, rule_out or p.patients.rule_out,
                                            p.patients.review_recall, p.patients.review_share)
        print(f"outer {r + 1}: cell threshold {threshold:.4f}, cells counted from {rule.count_threshold:.4f}, "
              f"boundary {rule.boundary:.2%}, uncertain band {rule.band[0]:.3f}-{rule.band[1]:.3f} (OOF slides at "
              f"most {rule.band_limit:.1%} in it); on its own OOF slides: {patients.describe(chosen)}")
        t = rule.count_threshold
        pooled.append(pooled_line(r, y[test], s["ensemble"][test], slides[test], rule))
        held = [rates(y[test], s["folds_test"][test, k], slides[test], t) for k in range(folds)]
        calibration.append((rates(y[rest], oof, slides[rest], t), tuple(np.mean(held, axis=0)),
                            rates(y[test], s["ensemble"][test], slides[test], t)))
        for variant, prob in [("shipped ensemble", s["ensemble"][test])] + \
                [(f"fold model {k}", s["folds_test"][test, k]) for k in range(folds)]:
            for cells in ((None, 30, 1000) if variant == "shipped ensemble" else (None,)):
                yy, pp, ss = resampled(y[test], prob, slides[test], cells, rng)
                table.setdefault((variant if cells is None or variant != "shipped ensemble" else
                                  f"{variant}, {cells} cells a slide"), []).append((yy, ss, rule.answers(pp, ss)[1]))
    print("\nCalibration at the counting threshold, pooled over cells: sensitivity / false-call rate")
    print("| outer round | inner OOF (what the rule uses) | held out, fold models (mean) | held out, shipped ensemble |")
    print("|---|---|---|---|")
    for r, cols in enumerate(calibration):
        print(f"| {r + 1} | " + " | ".join(f"{se:.3f} / {f:.4f}" for se, f in cols) + " |")
    print(f"\nSlide answers on the {len(np.unique(slides))} held-out slides of every round (Wilson 95% intervals); "
          "covered: slides whose corrected-parasitemia interval holds their true parasitized share")
    print("| scored by | sensitivity among called | specificity among called | referred | covered | "
          "healthy slides whose interval reaches 0 |")
    print("|---|---|---|---|---|---|")
    for name, rows in [("shipped ensemble", table["shipped ensemble"])] + \
            [(k, v) for k, v in table.items() if k != "shipped ensemble"]:
        m = figures(rows, confidence)
        print(f"| {name} | {cell(m, 'sensitivity')} | {cell(m, 'specificity')} | {m['slides_referred']} of "
              f"{m['slides_infected'] + m['slides_uninfected']}, {cell(m, 'refer_rate')} | {m['covered']:.2f} | "
              f"{m['healthy_with_0']:.2f} |")
    print("\nPooled parasitemia of each round's held-out slides that are not referred (the slides as clusters)")
    print("| outer round | true | called at the counting threshold | corrected (95% interval) | corrected / true |")
    print("|---|---|---|---|---|")
    print("\n".join(pooled))
    ours = [a.answer for *_, answers in table["shipped ensemble"] for a in answers]
    for k in range(folds):
        theirs = [a.answer for *_, answers in table[f"fold model {k}"] for a in answers]
        print(f"fold model {k}: answers differ from the shipped ensemble's on "
              f"{sum(a != b for a, b in zip(ours, theirs))} of {len(ours)} held-out slides")
    for name in ("shipped ensemble", "shipped ensemble, 1000 cells a slide"):
        print(f"\n{name}: the slides not answered right")
        for yy, ss, answers in table[name]:
            for (infected, share, name_, a) in zip(patients.infected_slides(yy, ss), true_shares(yy, ss),
                                                   np.unique(ss), answers):
                wrong = a.answer != patients.REFER and (a.answer == patients.INFECTED) != infected
                if wrong or a.answer == patients.REFER:
                    print(f"  {'MISSED' if wrong and infected else 'FALSE CALL' if wrong else 'referred'} {name_} "
                          f"(true share {share:.3f}): {a.answer}: {a.reason}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zip", type=Path, default=DEV_ZIP)
    ap.add_argument("--outer", type=int, default=3)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--scores", type=Path, help="an .npz to keep the scores in (read back when it exists)")
    ap.add_argument("--seed", type=int, default=0, help="of the subsampling and pooling draws")
    ap.add_argument("--rule-out", default=None, help="patients.rule_out for every round (default: params.yaml's)")
    args = ap.parse_args()
    if args.scores and args.scores.is_file():
        s = dict(np.load(args.scores, allow_pickle=False))
    else:
        if not args.zip.is_file():
            sys.exit(f"error: {args.zip} not found (the NIH dev crops; see ../shared/data/README.md)")
        s = nested_scores(args.zip, args.outer, args.inner)
        if args.scores:
            np.savez(args.scores, **s)
    report(s, args.seed, args.rule_out)


if __name__ == "__main__":
    main()
