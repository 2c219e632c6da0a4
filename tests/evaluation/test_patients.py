import dataclasses
import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.evaluation import patients

from conftest import slide_rule

RULE = slide_rule()  # counts cells from 0.5, boundary 10%, band 0.3-0.7; OOF sensitivity 0.9, false calls 0-4/70


def _slide(cells, counted, uncertain=0, name="S"):
    """A slide's scores: `counted` cells at 0.9 (flagged), `uncertain` at 0.5 (in the band), the rest at 0.1."""
    prob = np.r_[np.full(counted, 0.9), np.full(uncertain, 0.5), np.full(cells - counted - uncertain, 0.1)]
    return prob, np.full(cells, name)


def _answer(cells, counted, uncertain=0, review=None):
    return RULE.answer(RULE.slide(_slide(cells, counted, uncertain)[0]), review)


def test_the_model_alone_answers_infected_or_refer_and_says_what_would_settle_it():
    """Proportions, not counts: a slide at 20% is infected with 70 cells and with 5,000; with a clinical
    rule_out a healthy slide at a 1.5% false-call rate is referred to a review of its flagged cells, at both sizes."""
    strict = dataclasses.replace(RULE, boundary=0.001)
    for cells in (70, 5000):
        assert _answer(cells, round(0.2 * cells)).answer == patients.INFECTED, cells
        a = strict.answer(strict.slide(_slide(cells, round(0.015 * cells))[0]))
        n = round(0.015 * cells)
        assert a.answer == patients.REFER and f"review the {n} cell{'s' * (n > 1)} flagged" in a.reason, cells


def test_not_infected_without_a_review_only_below_the_rule_out():
    """The model alone says "not infected" only when its interval lies below the boundary: with a boundary of
    10% a healthy slide of 5,000 cells is; with the clinical 0.1% (counts never rule it out) it is referred."""
    assert _answer(5000, 50).answer == patients.NOT_INFECTED  # RULE's boundary is 10%
    strict = dataclasses.replace(RULE, boundary=0.001)
    for cells, counted in ((70, 0), (5000, 50), (100000, 1000)):  # at the OOF slides' false-call rates
        a = strict.answer(strict.slide(_slide(cells, counted)[0]))
        assert a.answer == patients.REFER and a.estimate.upper >= 0.001, (cells, counted)
    rng = np.random.default_rng(0)
    for _ in range(200):  # whatever the counts, "not infected" only with the interval below the rule_out
        cells = int(rng.integers(1, 20000))
        a = strict.answer(patients.Slide(cells, int(rng.binomial(cells, rng.uniform(0, 0.05))), 0, 0))
        assert a.answer != patients.NOT_INFECTED or a.estimate.upper < 0.001


def test_answer_after_review_on_a_hand_built_slide():
    """10,000 cells, 30 flagged. One confirmed parasite: infected. All 30 answered, none parasitized: not
    infected down to the detection limit (1 - 0.05^(1/10,000)) / 0.8 = 0.0374%, within a rule_out of 0.1%,
    or referred with the cells still to screen when the lab must rule out 0.01%. Part answered: refer, with
    the cells left."""
    rule = dataclasses.replace(RULE, boundary=0.001)
    s = rule.slide(_slide(10000, 30)[0])
    assert s.flagged == 30
    a = rule.answer(s, patients.Review(parasitized=1, answered=3))
    assert a.answer == patients.INFECTED and "1 parasitized cell confirmed" in a.reason
    a = rule.answer(s, patients.Review(parasitized=0, answered=30))
    assert a.answer == patients.NOT_INFECTED and a.review_limit == pytest.approx((1 - 0.05 ** 1e-4) / 0.8)
    assert "no parasite among 10,000 cells screened" in a.reason and "0.037% or more" in a.reason
    strict = dataclasses.replace(rule, boundary=0.0001)
    a = strict.answer(s, patients.Review(parasitized=0, answered=30))
    need = strict.review.cells_to_rule_out(0.0001)
    assert a.answer == patients.REFER and f"screen about {need - 10000:,} more cells" in a.reason
    a = rule.answer(s, patients.Review(parasitized=0, answered=12))
    assert a.answer == patients.REFER and "review the 18 cells flagged of 30" in a.reason
    # cells a person says are no red cells leave the count the limit rests on
    a = rule.answer(s, patients.Review(parasitized=0, answered=30, not_cells=5000))
    assert a.review_limit == pytest.approx((1 - 0.05 ** (1 / 5000)) / 0.8)


def test_photos_to_screen_are_said_in_photos():
    s = RULE.slide(_slide(120, 2)[0], photos=1)
    rule = dataclasses.replace(RULE, boundary=0.001)
    a = rule.answer(s, patients.Review(parasitized=0, answered=2))
    more = rule.review.cells_to_rule_out(0.001) - 120
    assert a.answer == patients.REFER and f"about {-(-more // 120):,} more photos" in a.reason


def test_a_slide_unlike_the_oof_slides_is_referred_even_after_a_clean_review():
    """Most cells in the band, or far more flagged than any smear-like OOF slide: referred whatever the count;
    a review that finds no parasite there cannot vouch for its recall, one that finds one still counts."""
    for cells in (30, 1000):
        a = _answer(cells, round(0.1 * cells), uncertain=round(0.6 * cells))
        assert a.answer == patients.REFER and "where the model is unsure" in a.reason, cells
    a = _answer(1000, 500)
    assert a.answer == patients.REFER and "flagged for review" in a.reason
    a = _answer(1000, 500, review=patients.Review(parasitized=0, answered=500))
    assert a.answer == patients.REFER and "not known on such a slide" in a.reason
    assert _answer(1000, 500, review=patients.Review(parasitized=2, answered=9)).answer == patients.INFECTED
    assert _answer(1000, 150, uncertain=100).answer == patients.INFECTED  # a few in the band change nothing


def test_band_check_holds_when_photos_count_for_fewer_cells_than_are_uncertain():
    """Photos as clusters: 300 cells worth 40 effective ones, 200 of them in the band. Wilson's interval at
    the effective size, not the raw 200 of 40 (whose square root was NaN and switched the check off)."""
    s = patients.Slide(cells=300, counted=0, uncertain=200, flagged=0, effective=40.0, photos=3)
    a = RULE.answer(s)
    assert a.answer == patients.REFER and "where the model is unsure" in a.reason


def test_no_cells_and_stain_referrals():
    assert RULE.answer(patients.Slide(0, 0, 0, 0)).answer == patients.REFER
    _, answers = RULE.answers(*_slide(70, 15))
    kept, referred = patients.with_referrals(answers * 2, ["", "stain unlike the training data"])
    assert kept.answer == patients.INFECTED
    assert (referred.answer, referred.reason) == (patients.REFER, "stain unlike the training data")
    assert referred.counted == kept.counted == 15 and referred.row()[1:5] == ("",) * 4  # counts, no number
    a = RULE.answer(RULE.slide(_slide(70, 0)[0], unlike="stain unlike the training data"))
    assert a.answer == patients.REFER and a.reason.startswith("stain unlike the training data; review")


def test_slide_metrics_by_hand():
    m = patients.slide_metrics([True, True, True, False, False],
                               [patients.INFECTED, patients.REFER, patients.NOT_INFECTED, patients.NOT_INFECTED,
                                patients.INFECTED], 0.95)
    assert (m["slide_sensitivity"], m["slide_specificity"], m["slide_refer_rate"]) == (0.5, 0.5, 0.2)
    assert m["slides_referred"] == 1 and m["slide_refer_rate_ci_lower"] < 0.2 < m["slide_refer_rate_ci_upper"]
    assert patients.describe(m).startswith("sensitivity 0.500 (")


def test_saved_rule_loads_back_for_its_model_only(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    patients.save(tmp_path / "rule.json", RULE, {"slide_sensitivity": 1.0}, model)
    assert patients.load(tmp_path / "rule.json", model) == RULE
    stored = json.loads((tmp_path / "rule.json").read_text())
    assert stored["rule"] == RULE.describe() and stored["chosen_on"] == {"slide_sensitivity": 1.0}
    model.write_bytes(b"other weights")
    with pytest.raises(UserError, match="another model"):
        patients.load(tmp_path / "rule.json", model)
    (tmp_path / "old.json").write_text('{"kind": "cells", "value": 3, "model_sha256": "x"}')
    with pytest.raises(UserError, match="not a slide rule file written by this version"):
        patients.load(tmp_path / "old.json", model)


def test_each_source_rule_is_saved_beside_the_pooled_one_and_loaded_by_name(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    lab = dataclasses.replace(RULE, count_threshold=0.2, boundary=0.05)
    patients.save(tmp_path / "rule.json", RULE, {}, model, {"lab": (lab, {"slide_sensitivity": None})})
    assert patients.load(tmp_path / "rule.json", model) == RULE
    assert patients.load(tmp_path / "rule.json", model, "lab") == lab
    with pytest.raises(UserError, match=r"--source nih: .* has no slide rule of that source \(its sources: lab\)"):
        patients.load(tmp_path / "rule.json", model, "nih")
