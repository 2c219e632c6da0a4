import numpy as np
import pytest

from malaria_cnn.evaluation.intervals import effective_size, korn_graubard, wilson


def test_wilson_matches_its_textbook_values():
    assert wilson(5, 10, 0.95) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson(10, 10, 0.95)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == pytest.approx(1.0)
    assert np.isnan(wilson(0, 0, 0.95)).all()


def test_korn_graubard_widens_with_between_slide_spread_and_with_few_slides():
    even = korn_graubard([25] * 10, [50] * 10, 0.95)  # every slide at 0.5
    split = korn_graubard([50] * 5 + [0] * 5, [50] * 10, 0.95)  # half at 1.0, half at 0.0
    assert split[0] < even[0] - 0.2 and split[1] > even[1] + 0.2
    many = korn_graubard([49] * 20, [50] * 20, 0.95)
    few = korn_graubard([98] * 2, [100] * 2, 0.95)  # the same 0.98 over as many cells, but 2 slides
    assert few[1] - few[0] > many[1] - many[0]


def test_korn_graubard_at_one_is_not_a_point():
    low, high = korn_graubard([50] * 4, [50] * 4, 0.95)
    assert high == 1.0 and 0.9 < low < 0.97
    assert np.isnan(korn_graubard([5], [5], 0.95)).all()  # one slide: nothing to vary over
    assert korn_graubard([5, 5, 0], [5, 5, 0], 0.95) == korn_graubard([5, 5], [5, 5], 0.95)  # an empty slide: none


def test_photos_as_clusters_are_worth_fewer_cells_by_hand():
    assert effective_size([5, 5], [100, 100]) == 200  # alike photos: no design effect
    # share 0.1 over 200 cells; between-photo variance 2 * (10^2 + 10^2) / 200^2 = 0.01 against 0.1 * 0.9 / 200
    assert effective_size([0, 20], [100, 100]) == pytest.approx(200 * 0.00045 / 0.01)
    assert effective_size([3], [50]) == 50
