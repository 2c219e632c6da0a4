import numpy as np
import pytest
from sklearn import metrics as skm

from malaria_cnn.evaluation import metrics


def _cells(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    prob = np.clip(np.where(y, rng.normal(0.7, 0.2, n), rng.normal(0.3, 0.2, n)), 0, 1)
    prob = np.round(prob, 2)  # ties, as a saturated network produces
    return y, prob


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_metrics_match_scikit_learn(seed):
    y, prob = _cells(seed=seed)
    rng = np.random.default_rng(seed + 10)
    weights = rng.integers(0, 4, size=(3, len(y))).astype(float)  # bootstrap-like draw counts
    got = metrics.all_metrics(weights, y, prob, threshold=0.5, bins=10)
    called = prob >= 0.5
    for row, w in enumerate(weights):
        def check(name, expected):
            assert got[name][row] == pytest.approx(expected, abs=1e-9), name

        check("accuracy", skm.accuracy_score(y, called, sample_weight=w))
        check("balanced_accuracy", skm.balanced_accuracy_score(y, called, sample_weight=w))
        check("sensitivity", skm.recall_score(y, called, sample_weight=w))
        check("specificity", skm.recall_score(~y, ~called, sample_weight=w))
        check("ppv", skm.precision_score(y, called, sample_weight=w))
        check("npv", skm.precision_score(~y, ~called, sample_weight=w))
        check("f1", skm.f1_score(y, called, sample_weight=w))
        check("mcc", skm.matthews_corrcoef(y, called, sample_weight=w))
        check("roc_auc", skm.roc_auc_score(y, prob, sample_weight=w))
        check("pr_auc", skm.average_precision_score(y, prob, sample_weight=w))
        check("brier", skm.brier_score_loss(y, prob, sample_weight=w))


def test_ece_on_a_hand_worked_example():
    y = np.array([1, 0, 1, 1])
    prob = np.array([0.05, 0.05, 0.95, 0.75])
    # bins of 0.5: [0.05, 0.05] mean p 0.05 vs share 0.5 -> gap 0.45 x 2 cells;
    # [0.95, 0.75] mean p 0.85 vs share 1.0 -> gap 0.15 x 2 cells.
    got = metrics.ece(np.ones((1, 4)), y.astype(bool), prob, bins=2)[0]
    assert got == pytest.approx((0.45 * 2 + 0.15 * 2) / 4)
    perfect = metrics.ece(np.ones((1, 2)), np.array([True, False]), np.array([1.0, 0.0]), bins=10)[0]
    assert perfect == 0


def test_undefined_metrics_are_nan_not_errors():
    y = np.array([False, False, False])
    got = metrics.all_metrics(np.ones((1, 3)), y, np.array([0.1, 0.6, 0.2]), 0.5, 10)
    for name in ("sensitivity", "roc_auc", "pr_auc", "mcc"):
        assert np.isnan(got[name][0]), name
    assert got["specificity"][0] == pytest.approx(2 / 3)


def test_zero_weight_cells_do_not_count():
    y = np.array([True, False, True])
    prob = np.array([0.9, 0.1, 0.2])
    with_third = metrics.all_metrics(np.ones((1, 3)), y, prob, 0.5, 10)
    without = metrics.all_metrics(np.array([[1.0, 1.0, 0.0]]), y, prob, 0.5, 10)
    assert with_third["sensitivity"][0] == 0.5 and without["sensitivity"][0] == 1.0
