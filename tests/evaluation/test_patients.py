import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.evaluation import patients

from conftest import slide_rule

RULE = slide_rule()  # counts cells from 0.5, boundary 10%, band 0.3-0.7; OOF sensitivity 0.9, false calls 0-4/70


def _slide(cells, counted, uncertain=0, name="S"):
    """A slide's scores: `counted` cells at 0.9, `uncertain` at 0.5 (in the band), the rest at 0.1."""
    prob = np.r_[np.full(counted, 0.9), np.full(uncertain, 0.5), np.full(cells - counted - uncertain, 0.1)]
    return prob, np.full(cells, name)


def _answer(cells, counted, uncertain=0):
    return RULE.answers(*_slide(cells, counted, uncertain))[1][0]


def test_answers_hold_at_70_cells_and_at_5000():
    """Proportions, not counts: a healthy slide at a 1.5% false-call rate is not infected with 70 cells and
    with 5,000 (a count rule of "at least 7 cells" calls the second infected); a slide at 30% is infected."""
    for cells in (70, 5000):
        assert _answer(cells, round(0.015 * cells)).answer == patients.NOT_INFECTED, cells
        assert _answer(cells, round(0.3 * cells)).answer == patients.INFECTED, cells


def test_too_few_cells_to_tell_is_referred_with_the_interval():
    a = _answer(12, 1)  # 1 in 12 called: could be a false call, could be 10% or more
    assert a.answer == patients.REFER and "could be 0, could be 10.00% or more" in a.reason
    assert a.estimate.lower == 0 and a.estimate.upper > 0.1


def test_a_slide_unlike_the_oof_slides_is_referred_not_answered():
    """Most cells in the band where the model is unsure: referred whatever the count, even though its
    corrected parasitemia alone would call it infected; a few such cells change nothing."""
    for cells in (30, 1000):
        a = _answer(cells, round(0.3 * cells), uncertain=round(0.6 * cells))
        assert a.answer == patients.REFER and "where the model is unsure" in a.reason, cells
    assert _answer(1000, 300, uncertain=100).answer == patients.INFECTED


def test_no_cells_and_stain_referrals():
    assert RULE.answer(0, 0, 0).answer == patients.REFER
    _, answers = RULE.answers(*_slide(70, 30))
    kept, referred = patients.with_referrals(answers * 2, ["", "stain unlike the training data"])
    assert kept.answer == patients.INFECTED
    assert (referred.answer, referred.reason) == (patients.REFER, "stain unlike the training data")
    assert referred.counted == kept.counted == 30 and referred.row()[1:5] == ("",) * 4  # counts, no number


def test_slide_metrics_by_hand():
    m = patients.slide_metrics([True, True, True, False, False],
                               [patients.INFECTED, patients.REFER, patients.NOT_INFECTED, patients.NOT_INFECTED,
                                patients.INFECTED], 0.95)
    assert (m["slide_sensitivity"], m["slide_specificity"], m["slide_refer_rate"]) == (0.5, 0.5, 0.2)
    assert m["slides_referred"] == 1 and m["slide_refer_rate_ci_lower"] < 0.2 < m["slide_refer_rate_ci_upper"]
    assert patients.describe(m).startswith("sensitivity 0.500 (")


def _oof(rng, slides=40):
    """OOF-like cells: 30 of every 40 slides infected at 5-60%, 70 cells each; parasitized cells score high,
    uninfected low, with a few false calls on some slides."""
    y, prob, names = [], [], []
    for i in range(slides):
        share = rng.uniform(0.05, 0.6) if i % 4 else 0.0
        sick = rng.random(70) < share
        p = np.where(sick, rng.beta(8, 1, 70), rng.beta(1, 12, 70))
        y += list(sick.astype(int))
        prob += list(p)
        names += [f"S{i:02d}"] * 70
    return np.array(y), np.array(prob), np.array(names)


def test_rule_chosen_on_oof_slides_holds_its_sensitivity_there():
    y, prob, slides = _oof(np.random.default_rng(3))
    rule, chosen = patients.choose_rule(y, prob, slides, 0.5, 0.95, 0.97)
    assert 0.5 <= rule.count_threshold < 1 and 0 < rule.boundary <= 1
    assert rule.band[0] < rule.band[1] and 0 <= rule.band_limit <= 1
    assert chosen["slide_sensitivity"] >= 0.97
    _, answers = rule.answers(prob, slides)
    again = patients.slide_metrics(patients.infected_slides(y, slides), [a.answer for a in answers], 0.95)
    assert again == chosen


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
    import dataclasses

    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    lab = dataclasses.replace(RULE, count_threshold=0.2, boundary=0.05)
    patients.save(tmp_path / "rule.json", RULE, {}, model, {"lab": (lab, {"slide_sensitivity": None})})
    assert patients.load(tmp_path / "rule.json", model) == RULE
    assert patients.load(tmp_path / "rule.json", model, "lab") == lab
    with pytest.raises(UserError, match=r"--source nih: .* has no slide rule of that source \(its sources: lab\)"):
        patients.load(tmp_path / "rule.json", model, "nih")


def test_a_lab_can_ask_for_a_lower_rule_out_and_gets_referrals_not_false_reassurance():
    """70 cells cannot rule out 1% parasitemia, whatever the model: with patients.rule_out 0.01 every slide
    not called infected is referred; with auto, the healthy OOF slides are answered not infected."""
    y, prob, slides = _oof(np.random.default_rng(3))
    auto, chosen = patients.choose_rule(y, prob, slides, 0.5, 0.95, 0.97)
    strict, m = patients.choose_rule(y, prob, slides, 0.5, 0.95, 0.97, rule_out=0.01)
    assert strict.boundary == 0.01 and auto.boundary > 0.01
    assert chosen["slide_specificity"] is not None and m["slide_specificity"] is None  # no slide answered healthy
    assert m["slides_referred"] > chosen["slides_referred"] >= 0
    assert 0 < auto.detection_limit < 1 and "detection limit about" in auto.describe()
