"""Stage threshold: choose the cell threshold and the slide rule (infected / not infected / refer) on the out-of-fold predictions,
pooled and, with several sources, each source's own -> models/threshold.json, models/slide_rule.json, metrics/cv.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

import numpy as np

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.data.slides import source_of
from malaria_cnn.evaluation import false_calls, fit_rule, oof, operating_point, patients


def main() -> None:
    p = params.load()
    scored = oof.read(paths.OOF)
    y, prob, slides, folds = scored["y"], scored["prob"], scored["slide"], scored["fold"]
    chosen = operating_point.choose(y, prob, p.threshold)
    on_oof = {**operating_point.on_split(y, prob, slides, chosen), "folds": p.cv.folds}
    report = operating_point.fold_report(y, prob, slides, folds, p.threshold) if p.cv.folds > 1 else None
    names = [params.source_name(b) for b in p.data.sources]
    sources = np.array([source_of(s, names) for s in slides]) if names else None
    own = operating_point.per_source(y, prob, slides, sources, p.threshold) if names else {}
    operating_point.save(paths.THRESHOLD, chosen, p.threshold, paths.MODEL, on_oof, report, own)

    photos = {params.source_name(b) for b in p.data.sources if b.source == "photos"}

    def slide_rule(sel, threshold, smears):  # smear photos are fitted on as they are, others made smear-like
        return fit_rule.choose_rule(y[sel], prob[sel], slides[sel], threshold, p.evaluate.confidence,
                                    p.patients.min_sensitivity, p.patients.rule_out, p.patients.review_recall,
                                    p.patients.review_share, smear_like_slides=not smears)

    calls = {f"oof_{k}": v for k, v in false_calls.summary(y, prob, slides, chosen).items()}
    all_photos = p.data.source == "photos" if not names else set(names) == photos
    rule, on_slides = slide_rule(np.ones(len(y), bool), chosen, all_photos)
    rules = {name: slide_rule(sources == name, o["threshold"], name in photos) for name, o in own.items()
             if o["threshold"] is not None}
    patients.save(paths.SLIDE_RULE, rule, on_slides, paths.MODEL, rules)
    answers = {f"oof_{k}": v for k, v in on_slides.items()}
    atomic.write_json(paths.CV_METRICS, {**operating_point.cv_metrics(chosen, on_oof, report), **calls, **answers})
    print(f"{operating_point.summary(chosen, p.threshold.rule, on_oof, report)}; per-slide false calls out of fold: "
          f"{false_calls.describe(calls, 'oof_', median=False)} -> {paths.THRESHOLD}; "
          f"slides: {rule.describe()}; out of fold: {patients.describe(on_slides)} -> {paths.SLIDE_RULE}")
    for name, o in own.items():
        print(f"  {operating_point.describe_source(name, o)}" + (f"; slides: {rules[name][0].describe()}"
                                                                 if name in rules else ""))


if __name__ == "__main__":
    run_main(main)
