import numpy as np

from malaria_cnn.evaluation import fit_rule, patients, smear_like


def _oof(rng, slides=40, cells=70):
    """OOF-like cells, balanced as NIH's crops are: 30 of every 40 slides infected at 5-60%; parasitized cells
    score high, uninfected low, with a few false calls on some slides."""
    y, prob, names = [], [], []
    for i in range(slides):
        share = rng.uniform(0.05, 0.6) if i % 4 else 0.0
        sick = rng.random(cells) < share
        p = np.where(sick, rng.beta(8, 1, cells), rng.beta(1, 12, cells))
        y += list(sick.astype(int))
        prob += list(p)
        names += [f"S{i:02d}"] * cells
    return np.array(y), np.array(prob), np.array(names)


def test_rule_is_fitted_on_smear_like_slides_and_reports_what_it_gives_there():
    y, prob, slides = _oof(np.random.default_rng(3))
    rule, chosen = fit_rule.choose_rule(y, prob, slides, 0.5, 0.95, 0.97, 0.001, 0.9)
    assert rule.boundary == 0.001 and 0.5 <= rule.count_threshold < 1
    assert rule.band[0] < rule.band[1] and 0 <= rule.band_limit <= 1
    assert 0.85 <= rule.review.recall < 0.95 and rule.review.threshold > 0
    # the limits come from smear-like slides: far below the balanced slides' shares
    balanced, _ = fit_rule.choose_rule(y, prob, slides, 0.5, 0.95, 0.97, 0.001, 0.9, smear_like_slides=False)
    assert rule.flag_limit < balanced.flag_limit / 3 and rule.flag_limit < 0.2
    sy, sp, ss = smear_like.resample(y, prob, slides)
    _, answers = rule.answers(sp, ss)
    again = patients.slide_metrics(patients.infected_slides(sy, ss), [a.answer for a in answers], 0.95)
    assert again == chosen
    assert chosen["slide_specificity"] is None  # counts alone rule out no 0.1%: no slide answered not infected


def test_auto_boundary_needs_the_lower_confidence_bound_of_sensitivity():
    """rule_out auto, on the balanced slides as they are: every one of the 30 infected slides is found at a
    boundary above 1% (a sensitivity of 1), but 30 of 30 has a Wilson lower bound of 0.886: short of 0.97,
    so no boundary holds and the model alone never says "not infected"; asked for 0.85, it keeps one."""
    y, prob, slides = _oof(np.random.default_rng(3))
    rule, m = fit_rule.choose_rule(y, prob, slides, 0.5, 0.95, 0.97, "auto", 0.9, smear_like_slides=False)
    assert rule.boundary == 0.0 and m["slide_specificity"] is None
    loose, m = fit_rule.choose_rule(y, prob, slides, 0.5, 0.95, 0.85, "auto", 0.9, smear_like_slides=False)
    assert loose.boundary > 0.01 and m["slide_sensitivity"] == 1.0 and m["slide_sensitivity_ci_lower"] >= 0.85
    assert m["slide_specificity"] > 0


def test_smear_photos_are_fitted_on_as_they_are():
    """A photo source at 1-2% is a smear already: fitted on as it is, its healthy slides set the limits."""
    rng = np.random.default_rng(5)
    y, prob, slides = [], [], []
    for i in range(30):
        sick = rng.random(120) < 0.015
        y += list(sick.astype(int))
        prob += list(np.where(sick, rng.beta(6, 2, 120), rng.beta(1, 20, 120)))
        slides += [f"photo{i}"] * 120
    rule, m = fit_rule.choose_rule(np.array(y), np.array(prob), np.array(slides), 0.5, 0.95, 0.97, 0.001, 0.9,
                                   smear_like_slides=False)
    assert m["slides_infected"] + m["slides_uninfected"] == 30 and rule.review.healthy_median < 0.1
