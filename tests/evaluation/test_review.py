import dataclasses

import numpy as np
import pytest

from malaria_cnn.evaluation import review
from malaria_cnn.evaluation.review import ReviewSet

SET = ReviewSet(threshold=0.6, min_share=0.0, recall=0.9, recall_lower=0.8, healthy_median=0.01, healthy_p90=0.03,
                healthy_max=0.05, confidence=0.95)


def test_review_set_is_chosen_for_its_recall_at_the_fewest_cells():
    """20 slides of 100 parasitized cells scored uniformly 0.2-1.0 and 900 uninfected below 0.7: the set holds
    90% of the parasites, its threshold halfway between two parasitized scores, and its cost on healthy
    cells is measured per slide."""
    rng = np.random.default_rng(0)
    y, prob, slides = [], [], []
    for i in range(20):
        y += [1] * 100 + [0] * 900
        prob += list(rng.uniform(0.2, 1.0, 100)) + list(rng.uniform(0, 0.7, 900))
        slides += [f"S{i}"] * 1000
    y, prob, slides = np.array(y), np.array(prob), np.array(slides)
    s = review.choose(y, prob, slides, 0.9, 0.95)
    assert s.recall == pytest.approx(0.9, abs=0.001)
    assert 0.8 < s.recall_lower < 0.9
    assert np.sum(prob[y == 1] >= s.threshold) == 1800
    expected = np.mean(prob[y == 0] >= s.threshold)
    assert s.healthy_median == pytest.approx(expected, abs=0.02) and s.healthy_median <= s.healthy_p90 <= s.healthy_max
    assert review.ReviewSet.from_dict(s.as_dict()).threshold == pytest.approx(s.threshold, abs=1e-6)


def test_flagged_cells_come_most_likely_parasite_first():
    prob = np.array([0.61, 0.1, 0.95, 0.6, 0.59, 0.8])
    assert list(SET.order(prob)) == [2, 5, 0, 3]
    assert SET.flagged(prob).sum() == 4


def test_the_top_of_the_ranking_is_flagged_whatever_the_scores():
    """A stain the model never saw: every score sinks below the threshold, the parasite still ranks first.
    2% of 200 cells: the 4 highest are flagged, and the cells above the threshold as well (when 2 are, they
    are 2 of those 4)."""
    ranked = dataclasses.replace(SET, min_share=0.02)
    prob = np.linspace(0.0, 0.3, 200)
    assert list(ranked.order(prob)) == [199, 198, 197, 196]
    prob[:10] = 0.9
    assert ranked.flagged(prob).sum() == 10
    prob[2:10] = 0.0
    assert list(ranked.order(prob)) == [0, 1, 199, 198]
    assert not dataclasses.replace(SET, min_share=0.02).flagged(np.full(20, 0.1)).any()  # 2% of 20: none


def test_detection_limit_scales_with_the_cells_screened():
    """(1 - 0.05^(1/N)) / 0.8: about 0.037% for 10,000 cells, 0.0037% for 100,000."""
    assert SET.detection_limit(10_000) == pytest.approx(3.745e-4, rel=1e-3)
    assert SET.detection_limit(100_000) == pytest.approx(3.745e-5, rel=1e-3)
    assert np.isnan(SET.detection_limit(0))
    n = SET.cells_to_rule_out(0.001)
    assert SET.detection_limit(n) <= 0.001 < SET.detection_limit(n - 1)
    assert SET.cells_to_rule_out(0.0) is None


def test_a_slide_at_the_detection_limit_shows_a_parasite_in_95_percent_of_repeats():
    """Simulated slides of 10,000 cells at exactly the stated limit, each parasite flagged with probability
    0.8 (the recall's lower bound): at least one flagged parasite in at least 95% of 4,000 repeats (and at
    half the limit, clearly fewer)."""
    rng = np.random.default_rng(1)
    for cells in (2_000, 10_000):
        limit = SET.detection_limit(cells)
        shown = rng.binomial(rng.binomial(cells, limit, 4000), SET.recall_lower) > 0
        assert shown.mean() >= 0.95 - 0.01, cells  # 0.01: the simulation's own noise at 4,000 repeats
        half = rng.binomial(rng.binomial(cells, limit / 2, 4000), SET.recall_lower) > 0
        assert half.mean() < 0.85
