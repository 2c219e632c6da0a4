import dataclasses

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from malaria_cnn.core.params import EvaluateParams
from malaria_cnn.evaluation import evaluate, false_calls, metrics, patients
from malaria_cnn.evaluation.parasitemia import ErrorRates

from conftest import slide_rule

CFG = EvaluateParams(bootstrap=200, min_slides=8)


def _test_split(seed=0, slides=8, per_slide=25):
    rng = np.random.default_rng(seed)
    n = slides * per_slide
    y = (rng.random(n) < 0.5).astype(int)
    prob = np.clip(np.where(y == 1, rng.normal(0.75, 0.2, n), rng.normal(0.25, 0.2, n)), 0, 1)
    return y, prob, np.repeat([f"C{i}" for i in range(slides)], per_slide)


def test_report_has_every_metric_beside_its_interval():
    y, prob, slides = _test_split()
    m = evaluate.report(y, prob, slides, 0.5, CFG)
    for name in metrics.NAMES:
        assert m[f"{name}_ci_lower"] <= m[name] <= m[f"{name}_ci_upper"], name
    assert m["cells"] == 200 and m["slides"] == 8 and m["threshold"] == 0.5
    c = m["counts"]
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == 200
    assert m["sensitivity"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]), abs=1e-6)
    assert "resamples_undefined" not in m  # both classes on every slide


def test_report_is_the_same_for_the_same_seed_and_moves_with_the_threshold():
    y, prob, slides = _test_split(1)
    assert evaluate.report(y, prob, slides, 0.5, CFG) == evaluate.report(y, prob, slides, 0.5, CFG)
    lower = evaluate.report(y, prob, slides, 0.2, CFG)
    assert lower["sensitivity"] > evaluate.report(y, prob, slides, 0.5, CFG)["sensitivity"]
    assert lower["roc_auc"] == evaluate.report(y, prob, slides, 0.5, CFG)["roc_auc"]


def test_one_class_leaves_undefined_metrics_empty_and_says_so():
    y, prob, slides = np.zeros(6, int), np.linspace(0.1, 0.6, 6), np.array(list("aabbcc"))
    m = evaluate.report(y, prob, slides, 0.5, CFG)
    assert m["sensitivity"] is None and m["roc_auc"] is None and m["specificity"] == pytest.approx(4 / 6, abs=1e-6)
    assert m["resamples_undefined"]["roc_auc"] == 200 and m["sensitivity_ci_lower"] is None
    assert "sensitivity n/a" in evaluate.summary(m, CFG)
    assert evaluate.roc_rows(y, prob) == [] and evaluate.pr_rows(y, prob) == []


def test_per_slide_rows():
    y = np.array([1, 1, 0, 0, 1])
    prob = np.array([0.9, 0.2, 0.1, 0.8, 0.7])
    slides = np.array(["a", "a", "a", "b", "b"])
    assert evaluate.per_slide_rows(y, prob, slides, 0.5) == [
        ("a", 3, 2, 1, 2, round(2 / 3, 6), 0.4),
        ("b", 2, 1, 2, 1, 0.5, 0.75),
    ]


def test_curve_rows():
    y, prob, _ = _test_split(2)
    pr = evaluate.pr_rows(y, prob)
    recall, precision = np.array([r for r, _, _ in pr]), np.array([p for _, p, _ in pr])
    assert average_precision_score(y, prob) == pytest.approx(np.sum(-np.diff(np.r_[recall, 0]) * precision), abs=1e-4)
    roc = evaluate.roc_rows(y, prob)
    assert roc[0][:2] == (0.0, 0.0) and roc[-1][:2] == (1.0, 1.0) and all(0 <= t <= 1 for *_, t in roc)
    cal = evaluate.calibration_rows(y, prob, 10)
    assert sum(row[2] for row in cal) == len(y)
    for low, high, _, mean_p, share, perfect in cal:
        assert low <= mean_p <= high and 0 <= share <= 1 and perfect == mean_p
    assert evaluate.confusion_rows(np.array([1, 0]), np.array([0.9, 0.6]), 0.5) == [
        ("Parasitized", "Parasitized"), ("Uninfected", "Parasitized")]


def test_summary_is_one_line_with_intervals():
    y, prob, slides = _test_split(3)
    line = evaluate.summary(evaluate.report(y, prob, slides, 0.5, CFG), CFG)
    assert "\n" not in line and line.startswith("evaluate: 200 test cells from 8 slides at threshold 0.500")
    assert "sensitivity 0." in line and "ROC AUC 0." in line
    assert "[95% CI: Korn-Graubard over slides for proportions, 200 slide resamples for the rest]" in line
    assert "unreliable" not in line  # 8 slides, evaluate.min_slides 8


def test_few_slides_are_marked_unreliable_everywhere_the_interval_shows():
    y, prob, slides = _test_split(4, slides=4)
    m = evaluate.report(y, prob, slides, 0.5, CFG)
    assert m["intervals_reliable"] is False
    assert evaluate.summary(m, CFG).endswith("WARNING: intervals unreliable: 4 slides, fewer than "
                                             "evaluate.min_slides (8)")


def test_perfect_slides_give_an_interval_not_a_point():
    """A percentile bootstrap over 4 slides all at specificity 1.0 returns exactly 1.0-1.0."""
    slides = np.repeat(["a", "b", "c", "d"], 50)
    y = np.tile([0, 1], 100)
    prob = np.where(y == 1, 0.9, 0.1)
    m = evaluate.report(y, prob, slides, 0.5, CFG)
    assert m["specificity"] == 1.0 and m["specificity_ci_upper"] == 1.0
    assert 0.8 < m["specificity_ci_lower"] < 0.97  # 100 cells, but only 4 slides to vary over


def test_slide_level_calls_are_reported_with_intervals():
    slides = np.repeat(["a", "b", "c", "d", "e"], 10)
    y = np.r_[np.ones(10), np.zeros(10), np.r_[np.ones(3), np.zeros(7)], np.zeros(20)].astype(int)
    prob = np.r_[np.full(10, 0.9), np.full(10, 0.1), np.full(3, 0.8), np.full(7, 0.2), np.full(10, 0.1),
                 np.r_[0.7, np.full(9, 0.1)]]
    rule = dataclasses.replace(slide_rule(), boundary=0.5, band=(0.4, 0.6), flag_limit=1.0,
                               rates=ErrorRates((10,) * 4, (0, 0, 0, 1), (10,) * 4, (10,) * 4))
    _, answers = rule.answers(prob, slides)
    # c's 3 calls in 10 cells could be false calls: a slide of 10 cells is too few to tell
    assert [a.answer for a in answers] == ["infected", "not infected", "refer", "not infected", "not infected"]
    answers[1] = patients.Answer(patients.REFER, "stain unlike the training data", answers[1].estimate, 0, 0, 0.1)
    m = evaluate.report(y, prob, slides, 0.5, CFG, rule, answers)
    assert (m["slides_infected"], m["slides_uninfected"], m["slides_referred"]) == (2, 3, 2)
    assert (m["slide_sensitivity"], m["slide_specificity"], m["slide_refer_rate"]) == (1.0, 1.0, 0.4)
    assert m["slide_refer_rate_ci_lower"] < 0.4 < m["slide_refer_rate_ci_upper"]
    line = evaluate.summary(m, CFG)
    assert "; slides (2 infected, 3 uninfected), the model alone: sensitivity 1.000 (" in line and "2 of 5 referred" in line


def test_report_and_summary_carry_the_per_slide_false_call_rate():
    """b, d, e have 10 uninfected cells each (0, 0 and 1 called Parasitized); c's 7 are too few to count."""
    slides = np.repeat(["a", "b", "c", "d", "e"], 10)
    y = np.r_[np.ones(10), np.zeros(10), np.r_[np.ones(3), np.zeros(7)], np.zeros(20)].astype(int)
    prob = np.r_[np.full(10, 0.9), np.full(10, 0.1), np.full(3, 0.8), np.r_[0.9, np.full(6, 0.2)], np.full(10, 0.1),
                 np.r_[0.7, np.full(9, 0.1)]]
    m = evaluate.report(y, prob, slides, 0.5, CFG)
    assert {k: m[k] for k in false_calls.summary(y, prob, slides, 0.5)} == {
        "false_call_rate_median": 0.0, "false_call_rate_p90": 0.08, "false_call_rate_max": 0.1,
        "false_call_rate_slides": 3, "false_call_worst_slide": "e"}
    line = evaluate.summary(m, CFG)
    assert "\n" not in line
    assert "; per-slide false calls: median 0.0%, 90th percentile 8.0%, max 10.0% (slide e) [95% CI" in line
