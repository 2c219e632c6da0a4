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


def test_every_slide_is_a_draw_of_its_own_however_few_its_cells():
    """Smear photos as slides, one or two parasitized cells each: each is measured alone (merged into one
    pseudo-slide, a photo whose parasites were all missed would vanish into the pool)."""
    y = np.r_[1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0].astype(int)
    prob = np.r_[0.9, 0.1, 0.1, 0.1, 0.9, 0.2, 0.1, 0.1, 0.9, 0.9, np.full(8, 0.1)]
    slides = np.r_[np.repeat("p1", 4), np.repeat("p2", 4), np.repeat("p3", 10)]
    rates = ErrorRates.measure(y, prob, slides, 0.5)
    assert rates.parasitized == (1, 2, 2) and rates.detected == (1, 1, 2)
    assert rates.uninfected == (3, 2, 8) and rates.false_calls == (0, 0, 0)
    assert rates.usable and rates.sensitivity == 0.8
    # the draws of Se carry p2's miss: a slide drawn from it has Se about 1/2, not the pool's 4/5
    se, _ = rates.draws(np.random.default_rng(0), 20000)
    assert np.quantile(se, 0.1) < 0.45


def test_detection_limit_divides_by_a_low_quantile_of_sensitivity_not_the_pooled_one():
    """Half the slides find 95% of their parasites, half 40%: a slide of the weak half needs more than
    twice the parasitemia to show; the pooled sensitivity (0.675) hides it."""
    rates = ErrorRates((1000,) * 10, (20,) * 10, (200,) * 10, (190,) * 5 + (80,) * 5)
    f_high = np.quantile(rates.draws(np.random.default_rng(0), parasitemia.DRAWS)[1], 0.975)
    limit = parasitemia.detection_limit(rates, 0.95)
    assert limit > f_high / rates.sensitivity * 1.5
    assert f_high / 0.4 < limit < f_high / 0.3  # the weak slides' 0.4, less the doubt of their 200 cells


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
