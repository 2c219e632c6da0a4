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


def test_wilson_refuses_more_successes_than_trials():
    """A count over an effective size must be scaled with it: 200 uncertain cells of 40 effective ones gave a
    NaN bound that read as 0 and switched the band check off."""
    with pytest.raises(ValueError, match="200 successes out of 40"):
        wilson(200, 40, 0.95)
    low, _ = wilson(200 * 40 / 300, 40, 0.95)
    assert 0.5 < low < 0.67


def test_a_photo_or_photos_alike_count_for_fewer_cells_than_they_have():
    """One photo cannot show the spread between photos, nor can photos whose shares happen to agree: the
    floor on the design effect holds for both; a spread larger than the floor still counts."""
    from malaria_cnn.evaluation.intervals import PHOTO_DESIGN_EFFECT

    assert effective_size([3], [120]) == 120  # crops: no floor
    assert effective_size([3], [120], PHOTO_DESIGN_EFFECT) == pytest.approx(120 / PHOTO_DESIGN_EFFECT)
    assert effective_size([2, 2, 2], [100] * 3, PHOTO_DESIGN_EFFECT) == pytest.approx(300 / PHOTO_DESIGN_EFFECT)
    spread = effective_size([0, 0, 20, 0], [100] * 4, PHOTO_DESIGN_EFFECT)
    assert spread < 400 / PHOTO_DESIGN_EFFECT
