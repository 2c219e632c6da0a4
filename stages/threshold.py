"""Stage threshold: choose the cell threshold and the slide rule (infected / not infected / refer) on the out-of-fold predictions
-> models/threshold.json, models/slide_rule.json, metrics/cv.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run the package in this tree

from malaria_cnn.core import atomic, params, paths
from malaria_cnn.core.errors import run_main
from malaria_cnn.evaluation import false_calls, oof, operating_point, patients


def main() -> None:
    p = params.load()
    scored = oof.read(paths.OOF)
    y, prob, slides, folds = scored["y"], scored["prob"], scored["slide"], scored["fold"]
    chosen = operating_point.choose(y, prob, p.threshold)
    on_oof = {**operating_point.on_split(y, prob, slides, chosen), "folds": p.cv.folds}
    report = operating_point.fold_report(y, prob, slides, folds, p.threshold) if p.cv.folds > 1 else None
    operating_point.save(paths.THRESHOLD, chosen, p.threshold, paths.MODEL, on_oof, report)
    calls = {f"oof_{k}": v for k, v in false_calls.summary(y, prob, slides, chosen).items()}
    rule, on_slides = patients.choose_rule(y, prob, slides, chosen, p.evaluate.confidence, p.patients.min_sensitivity,
                                           p.patients.rule_out)
    patients.save(paths.SLIDE_RULE, rule, on_slides, paths.MODEL)
    answers = {f"oof_{k}": v for k, v in on_slides.items()}
    atomic.write_json(paths.CV_METRICS, {**operating_point.cv_metrics(chosen, on_oof, report), **calls, **answers})
    print(f"{operating_point.summary(chosen, p.threshold.rule, on_oof, report)}; per-slide false calls out of fold: "
          f"{false_calls.describe(calls, 'oof_', median=False)} -> {paths.THRESHOLD}; "
          f"slides: {rule.describe()}; out of fold: {patients.describe(on_slides)} -> {paths.SLIDE_RULE}")


if __name__ == "__main__":
    run_main(main)
