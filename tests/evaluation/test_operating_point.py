import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import ThresholdParams
from malaria_cnn.evaluation import operating_point

#               parasitized ............................  uninfected ..........
Y = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
P = np.array([.95, .9, .85, .8, .75, .7, .6, .45, .35, .1, .65, .5, .4, .3, .25, .2, .15, .1, .05, .02])


def _calls(t):
    called = P >= t
    return (called & (Y == 1)).sum() / 10, (~called & (Y == 0)).sum() / 10


def test_sensitivity_rule_keeps_the_target_with_the_best_specificity():
    t = operating_point.choose(Y, P, ThresholdParams(rule="sensitivity", min_sensitivity=0.9))
    sens, spec = _calls(t)
    assert sens >= 0.9 and spec == 0.7  # 9 of 10 found needs 0.35: below 0.4, 0.5 and 0.65
    assert t == pytest.approx((0.35 + 0.3) / 2)  # halfway to the next lower score
    t80 = operating_point.choose(Y, P, ThresholdParams(rule="sensitivity", min_sensitivity=0.8))
    assert _calls(t80) == (0.8, 0.8) and t80 == pytest.approx((0.45 + 0.4) / 2)


def test_youden_rule_maximises_sensitivity_plus_specificity():
    t = operating_point.choose(Y, P, ThresholdParams(rule="youden"))
    best = max(sum(_calls(s)) for s in np.unique(P))
    assert sum(_calls(t)) == pytest.approx(best)


def test_ties_go_to_the_threshold_that_finds_more_parasitized_cells():
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.99, 0.98, 0.6, 0.2, 0.1])  # perfectly separated: any cut in (0.2, 0.6] is perfect
    t = operating_point.choose(y, p, ThresholdParams(rule="sensitivity", min_sensitivity=0.5))
    assert t == pytest.approx(0.4)  # the middle of the gap, not just under 0.98
    assert operating_point.choose(y, p, ThresholdParams(rule="youden")) == pytest.approx(0.4)


def test_f1_rule_weighs_false_calls_at_low_prevalence():
    """1 parasitized cell in 100: a sensitivity floor of 0.95 calls every cell down to the lowest parasitized
    score; F1 stops where the false calls start to outnumber what is found."""
    y = np.r_[np.ones(3), np.zeros(297)].astype(int)
    p = np.r_[0.9, 0.8, 0.3, np.linspace(0.0, 0.5, 297)]  # the third parasitized cell sits among ~119 uninfected
    t = operating_point.choose(y, p, ThresholdParams(rule="f1"))
    called = p >= t
    assert (called & (y == 1)).sum() == 2 and (called & (y == 0)).sum() == 0  # F1 0.8: 2 found, none false
    floor = operating_point.choose(y, p, ThresholdParams(rule="sensitivity", min_sensitivity=0.95))
    assert ((p >= floor) & (y == 0)).sum() > 100


def test_count_rule_calls_as_many_cells_as_are_parasitized():
    t = operating_point.choose(Y, P, ThresholdParams(rule="count"))
    assert (P >= t).sum() == (Y == 1).sum()  # 10 called: 8 found and 2 false, the share called is the truth's
    assert _calls(t) == (0.8, 0.8)


def test_each_source_gets_its_own_threshold_by_its_own_cells():
    y = np.r_[Y, 1, 0, 0, 0, 0, 0]
    p = np.r_[P, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0]
    sources = np.array(["nih"] * 20 + ["lab"] * 6)
    slides = np.array([f"{s}/x" for s in sources])
    own = operating_point.per_source(y, p, slides, sources, ThresholdParams(per_source="f1"))
    assert set(own) == {"nih", "lab"} and own["lab"]["rule"] == "f1"
    assert own["lab"]["threshold"] == pytest.approx(0.15) and own["lab"]["precision"] == 1.0  # its one cell, alone
    assert own["nih"]["threshold"] == operating_point.choose(Y, P, ThresholdParams(rule="f1"))
    assert own["lab"]["called"] == 1 and own["lab"]["labelled_parasitized"] == 1 and own["lab"]["cells"] == 6
    lab = sources == "lab"
    one_class = operating_point.per_source(y[~lab | (y == 0)], p[~lab | (y == 0)], slides[~lab | (y == 0)],
                                           sources[~lab | (y == 0)], ThresholdParams())
    assert one_class["lab"]["threshold"] is None and "one class" in one_class["lab"]["why"]
    assert operating_point.per_source(y, p, slides, sources, ThresholdParams(per_source="none")) == {}


def test_a_source_threshold_is_loaded_by_name_or_refused_in_one_line(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    path = tmp_path / "threshold.json"
    own = {"lab": {"threshold": 0.2}, "healthy": {"threshold": None, "why": "its out-of-fold cells are all of one class"}}
    operating_point.save(path, 0.37, ThresholdParams(), model, {"cells": 20}, None, own)
    assert operating_point.load(path, model) == 0.37 and operating_point.load(path, model, "lab") == 0.2
    with pytest.raises(UserError, match=r"--source nih: .* has no threshold of that source \(its sources: lab, healthy"):
        operating_point.load(path, model, "nih")
    with pytest.raises(UserError, match="no threshold of its own .its out-of-fold cells are all of one class"):
        operating_point.load(path, model, "healthy")
    operating_point.save(path, 0.37, ThresholdParams(), model, {"cells": 20})
    with pytest.raises(UserError, match="its sources: none: the model was trained on one source"):
        operating_point.load(path, model, "lab")


def test_fixed_rule_ignores_the_data():
    assert operating_point.choose(Y, P, ThresholdParams(rule="fixed", value=0.3)) == 0.3


def test_one_class_in_validation_is_a_clear_error():
    with pytest.raises(UserError, match="needs both classes in the validation split"):
        operating_point.choose(np.zeros(4, int), np.full(4, 0.2), ThresholdParams(rule="youden"))


def test_stored_threshold_belongs_to_its_model(tmp_path):
    model, other = tmp_path / "model.keras", tmp_path / "other.keras"
    model.write_bytes(b"weights")
    other.write_bytes(b"other weights")
    path = tmp_path / "threshold.json"
    operating_point.save(path, 0.37, ThresholdParams(), model, {"cells": 20})
    assert operating_point.load(path, model) == 0.37
    assert json.loads(path.read_text())["rule"] == "sensitivity"
    with pytest.raises(UserError, match="chosen for another model"):
        operating_point.load(path, other)
    with pytest.raises(UserError, match="not found"):
        operating_point.load(tmp_path / "missing.json", model)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not a threshold file"):
        operating_point.load(path, model)


def test_on_split_reports_what_the_threshold_does():
    out = operating_point.on_split(Y, P, np.array(["a"] * 10 + ["b"] * 10), 0.5)
    assert out == {"cells": 20, "slides": 2, "sensitivity": 0.7, "specificity": 0.8}


def test_fold_report_scores_each_fold_at_the_other_folds_threshold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    prob = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.2, 600), 0, 1)
    folds = np.repeat(np.arange(3), 200)
    cfg = ThresholdParams(rule="sensitivity", min_sensitivity=0.9)
    report = operating_point.fold_report(y, prob, np.repeat(["a", "b", "c"], 200), folds, cfg)
    assert [f["fold"] for f in report["folds"]] == [0, 1, 2]
    for f in report["folds"]:
        rest = folds != f["fold"]
        assert f["threshold"] == pytest.approx(operating_point.choose(y[rest], prob[rest], cfg), abs=1e-6)
        this = folds == f["fold"]
        called = prob[this] >= f["threshold"]
        assert f["sensitivity"] == pytest.approx((called & (y[this] == 1)).sum() / (y[this] == 1).sum(), abs=1e-6)
    sens = [f["sensitivity"] for f in report["folds"]]
    assert report["sensitivity_mean"] == pytest.approx(np.mean(sens), abs=1e-6)
    assert report["sensitivity_min"] == pytest.approx(min(sens), abs=1e-6) and report["sensitivity_sd"] > 0
    line = operating_point.summary(0.5, "sensitivity", {"cells": 600, "slides": 3, "folds": 3, "sensitivity": 0.9,
                                                       "specificity": 0.8}, report)
    assert line.startswith("threshold: 0.5000 by rule sensitivity on 600 out-of-fold cells from 3 slides")
    assert "fold by fold at the other folds' threshold: sensitivity" in line


def _choose_quadratic(y, prob, p):
    """The rule as it was first written (a scores x cells matrix): the reference for the O(N log N) one."""
    positive = np.asarray(y) == 1
    scores = np.unique(prob)[::-1]
    called = prob[None, :] >= scores[:, None]
    sensitivity = (called & positive).sum(axis=1) / positive.sum()
    specificity = (~called & ~positive).sum(axis=1) / (~positive).sum()
    if p.rule == "sensitivity":
        score = np.where(sensitivity >= p.min_sensitivity - 1e-12, specificity, -1.0)
    else:
        score = sensitivity + specificity - 1
    k = int(np.flatnonzero(score == score.max())[-1])
    below = scores[k + 1] if k + 1 < len(scores) else 0.0
    return float((scores[k] + below) / 2)


@pytest.mark.parametrize("seed", range(6))
def test_sorted_rule_gives_exactly_the_quadratic_rules_threshold(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(int)
    y[:2] = [0, 1]
    prob = np.round(np.clip(rng.normal(0.3 + 0.4 * y, 0.25), 0, 1), int(rng.integers(1, 4)))  # rounding: many ties
    for p in (ThresholdParams(rule="youden"), ThresholdParams(rule="sensitivity", min_sensitivity=0.9),
              ThresholdParams(rule="sensitivity", min_sensitivity=float(rng.uniform(0.5, 1)))):
        assert operating_point.choose(y, prob, p) == _choose_quadratic(y, prob, p)


def test_the_rule_needs_memory_in_proportion_to_the_cells():
    import tracemalloc

    n = 50_000  # the old scores x cells matrix: 50,000 x 50,000 booleans, 2.5 GB
    rng = np.random.default_rng(0)
    y, prob = (rng.random(n) < 0.5).astype(int), rng.random(n)
    tracemalloc.start()
    try:
        t = operating_point.choose(y, prob, ThresholdParams(rule="youden"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0 < t < 1 and peak < 100 * n  # a few arrays of n numbers (NumPy reports to tracemalloc)
