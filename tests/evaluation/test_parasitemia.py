import numpy as np
import pytest

from malaria_cnn.evaluation import parasitemia
from malaria_cnn.evaluation.parasitemia import ErrorRates

# two measured slides alike: sensitivity 45/50 = 0.9, false-call rate 2/100 = 0.02
RATES = ErrorRates((100, 100), (2, 2), (50, 50), (45, 45))


def test_rogan_gladen_by_hand():
    assert parasitemia.rogan_gladen(0.1, 0.9, 0.02) == pytest.approx(0.08 / 0.88)
    assert parasitemia.rogan_gladen(0.01, 0.9, 0.02) == 0  # fewer calls than false calls explain: clipped
    assert parasitemia.rogan_gladen(0.95, 0.9, 0.02) == 1
    assert parasitemia.rogan_gladen(0.5, 0.3, 0.4) == 0  # a classifier no better than chance corrects nothing


def test_estimate_corrects_with_the_pooled_rates_and_keeps_the_called_share():
    e = parasitemia.estimate(10, 100, RATES, 0.95)
    assert e.called == 0.1 and e.corrected == pytest.approx(0.08 / 0.88)
    assert e.lower < e.corrected < e.upper
    assert np.isnan(parasitemia.estimate(0, 0, RATES, 0.95).corrected)


def test_measured_rates_count_only_slides_with_enough_cells_of_the_class():
    y = np.r_[np.ones(10), np.zeros(20), np.ones(2), np.zeros(3)].astype(int)
    prob = np.r_[np.full(9, 0.9), 0.1, np.full(2, 0.9), np.full(18, 0.1), 0.9, 0.9, 0.9, 0.1, 0.1]
    slides = np.r_[np.repeat("a", 30), np.repeat("b", 5)]
    rates = ErrorRates.measure(y, prob, slides, 0.5)
    assert rates == ErrorRates((20,), (2,), (10,), (9,))  # b's 2 parasitized and 3 uninfected are too few


def test_slides_too_small_alone_are_measured_together():
    """Smear photos as slides: one or two parasitized cells each, too few alone, enough together."""
    y = np.r_[1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0].astype(int)
    prob = np.r_[0.9, 0.1, 0.1, 0.1, 0.9, 0.2, 0.1, 0.1, 0.9, 0.9, np.full(8, 0.1)]
    slides = np.r_[np.repeat("p1", 4), np.repeat("p2", 4), np.repeat("p3", 10)]
    rates = ErrorRates.measure(y, prob, slides, 0.5)
    assert rates.parasitized == (5,) and rates.detected == (4,)  # 1 + 2 + 2 parasitized, 1 missed: one slide
    assert rates.uninfected == (8, 5) and rates.false_calls == (0, 0)  # p3 alone; p1 and p2's 3 + 2 together
    assert rates.usable and rates.sensitivity == 0.8
    assert not ErrorRates.measure(y[:8], prob[:8], slides[:8], 0.5).parasitized  # 3 parasitized: still too few


def _population(rng, slides):
    """Per-slide sensitivity and false-call rate of a classifier that varies between slides, as NIH's do."""
    return rng.beta(18, 2, slides), rng.beta(0.8, 40, slides)


def test_interval_covers_the_true_parasitemia_in_simulation():
    """Slides with known parasitemia, their cells called by a classifier whose errors vary between slides;
    the error rates measured on 40 other slides of 70 cells. The 95% interval holds the true share of
    parasitized cells in at least 90% of the repeats at every cell count, and a healthy slide's interval
    reaches 0."""
    rng = np.random.default_rng(7)
    se, f = _population(rng, 40)
    rates = ErrorRates(tuple([70] * 40), tuple(int(v) for v in rng.binomial(70, f)),
                       tuple([30] * 40), tuple(int(v) for v in rng.binomial(30, se)))
    for cells in (30, 300, 5000):
        covered, healthy_zero, healthy = 0, 0, 0
        for repeat in range(200):
            pi = rng.choice([0.0, 0.02, 0.1, 0.3, 0.6])
            s, fc = _population(rng, 1)
            sick = rng.binomial(cells, pi)
            called = rng.binomial(sick, s[0]) + rng.binomial(cells - sick, fc[0])
            e = parasitemia.estimate(int(called), cells, rates, 0.95, seed=repeat)
            covered += e.lower <= sick / cells <= e.upper
            if pi == 0:
                healthy += 1
                healthy_zero += e.lower == 0
        assert covered / 200 >= 0.9, cells
        assert healthy_zero / healthy >= 0.95, cells


def test_a_healthy_slide_interval_reaches_zero_at_any_cell_count():
    """1.5% of cells called on a healthy slide, at 70 cells and at 5,000: the correction reads ~0, and the
    interval includes 0 (the called share alone, with Wilson's interval, excludes 0 at 5,000)."""
    rates = ErrorRates((70,) * 10, (0, 1, 1, 1, 2, 0, 3, 1, 0, 2), (30,) * 10, (27,) * 10)
    for cells in (70, 5000):
        e = parasitemia.estimate(round(0.015 * cells), cells, rates, 0.95)
        assert e.lower == 0 and e.corrected < 0.01
