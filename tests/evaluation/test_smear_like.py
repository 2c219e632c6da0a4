import numpy as np

from malaria_cnn.evaluation import smear_like


def _balanced(rng):
    """NIH-like OOF slides: 10 infected at 30-60% parasitized, 5 healthy, 100 cells each; 3 parasitized cells
    on one more slide, too few to lend their own."""
    y, prob, slides = [], [], []
    for i in range(15):
        sick = rng.random(100) < (rng.uniform(0.3, 0.6) if i < 10 else 0)
        y += list(sick.astype(int))
        prob += list(np.where(sick, 0.9, 0.1) + i / 1000)  # each slide's cells recognisable by their score
        slides += [f"S{i:02d}"] * 100
    y += [1, 1, 1] + [0] * 50
    prob += [0.8] * 3 + [0.2] * 50
    slides += ["few"] * 53
    return np.array(y), np.array(prob), np.array(slides)


def test_slides_become_smears_at_0_to_2_percent_with_their_own_cells():
    y, prob, slides = _balanced(np.random.default_rng(0))
    sy, sp, ss = smear_like.resample(y, prob, slides)
    names = np.unique(ss)
    assert len(names) == 32  # 16 slides with uninfected cells, each a healthy and an infected smear
    for name in names:
        mine = ss == name
        original = name.rsplit("~", 1)[0]
        assert np.sum(sy[mine] == 0) == np.sum((y == 0) & (slides == original))  # every uninfected cell kept
        share = sy[mine].mean()
        if name.endswith(smear_like.HEALTHY):
            assert share == 0
        else:
            assert 0 < share <= 0.06  # up to 2% (binomial), one parasite at least on a small slide
            if original.startswith("S") and int(original[1:]) < 10:  # its own parasitized cells, by their score
                assert set(np.round(sp[mine & (sy == 1)], 3)) == {round(0.9 + int(original[1:]) / 1000, 3)}
    assert np.mean([sy[ss == n].mean() for n in names if n.endswith(smear_like.INFECTED)]) < 0.02


def test_no_uninfected_cells_no_smear():
    sy, _, _ = smear_like.resample(np.ones(5, int), np.full(5, 0.9), np.repeat("all_parasitized", 5))
    assert len(sy) == 0
