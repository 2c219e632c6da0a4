import numpy as np

from malaria_cnn.evaluation import bootstrap, metrics


def test_draws_resample_whole_slides():
    slides = np.array(["a", "a", "b", "c", "c", "c"])
    draws, index = bootstrap.slide_draws(slides, resamples=50, seed=1)
    assert draws.shape == (50, 3) and (draws.sum(axis=1) == 3).all()  # as many slides as there are
    weights = draws[:, index]
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    again, _ = bootstrap.slide_draws(slides, resamples=50, seed=1)
    assert (again == draws).all()


def _sensitivity(y, called):
    return lambda w: {"sensitivity": metrics.from_counts(metrics.counts(w, y, called))["sensitivity"]}


def test_interval_reflects_between_slide_spread():
    # Ten slides of 20 parasitized cells each: the same overall sensitivity (0.5), but in one set
    # every slide is at 0.5, in the other half the slides are at 1.0 and half at 0.0.
    slides = np.repeat(np.arange(10), 20)
    y = np.ones(200, bool)
    even = np.tile(np.arange(20) < 10, 10)
    split = np.repeat(np.arange(10) < 5, 20)
    lo, hi, n = bootstrap.intervals(_sensitivity(y, even), slides, 500, 0.95, seed=0)["sensitivity"]
    assert (lo, hi, n) == (0.5, 0.5, 500)
    lo, hi, n = bootstrap.intervals(_sensitivity(y, split), slides, 500, 0.95, seed=0)["sensitivity"]
    assert lo < 0.3 and hi > 0.7 and n == 500


def test_resamples_without_a_class_are_counted_not_used():
    slides = np.array(["pos", "neg"])
    y, called = np.array([True, False]), np.array([True, False])
    lo, hi, n = bootstrap.intervals(_sensitivity(y, called), slides, 400, 0.95, seed=3)["sensitivity"]
    assert (lo, hi) == (1.0, 1.0)
    assert 250 < n < 350  # a quarter of the resamples draw the negative slide twice


def test_chunks_give_the_same_intervals(monkeypatch):
    slides = np.repeat(np.arange(8), 5)
    rng = np.random.default_rng(0)
    y, called = rng.random(40) < 0.5, rng.random(40) < 0.5
    whole = bootstrap.intervals(_sensitivity(y, called), slides, 300, 0.9, seed=2)
    monkeypatch.setattr(bootstrap, "_CHUNK_CELLS", 7 * 40)
    assert bootstrap.intervals(_sensitivity(y, called), slides, 300, 0.9, seed=2) == whole


def test_every_resample_weighs_whole_slides_and_draws_as_many_slides_as_there_are():
    """Resampling cells instead of slides would weigh cells of one slide differently."""
    rng = np.random.default_rng(4)
    slides = rng.permutation(np.repeat(["a", "b", "c", "d", "e"], [3, 40, 7, 1, 20]))  # interleaved, unequal
    seen = []

    def record(weights):
        seen.append(weights.copy())
        return {"m": weights.sum(axis=1)}

    bootstrap.intervals(record, slides, 300, 0.95, seed=1)
    weights = np.concatenate(seen)
    assert weights.shape == (300, len(slides))
    for s in np.unique(slides):
        cell_weights = weights[:, slides == s]
        assert (cell_weights == cell_weights[:, :1]).all(), s  # every cell of a slide drawn together
    per_slide = np.stack([weights[:, slides == s][:, 0] for s in np.unique(slides)], axis=1)
    assert (per_slide.sum(axis=1) == 5).all() and len({tuple(r) for r in per_slide}) <= 126  # C(9, 5) at most
