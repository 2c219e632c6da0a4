import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.evaluation import patients


def _val(called_per_slide, infected, cells=20):
    """Cells of slides, each with `called` cells scored 0.9 (the rest 0.1); labels by `infected`."""
    y, prob, slides = [], [], []
    for i, (called, inf) in enumerate(zip(called_per_slide, infected)):
        prob += [0.9] * called + [0.1] * (cells - called)
        y += [int(inf)] * 2 + [0] * (cells - 2)
        slides += [f"S{i}"] * cells
    return np.array(y), np.array(prob), np.array(slides)


def test_rule_separates_infected_slides_from_a_few_false_alarms():
    y, prob, slides = _val([8, 5, 2, 1, 0, 2], [1, 1, 1, 0, 0, 0])
    rule, how = patients.choose_rule(y, prob, slides, 0.5)
    # at least 2 cells calls one uninfected slide; at least 3 misses an infected one: tie at 5/6,
    # and the more sensitive rule wins
    assert rule == patients.SlideRule("cells", 2) and how.startswith("balanced accuracy 0.833")
    y, prob, slides = _val([8, 5, 3, 1, 0, 2], [1, 1, 1, 0, 0, 0])
    assert patients.choose_rule(y, prob, slides, 0.5)[0] == patients.SlideRule("cells", 3)


def test_parasitemia_rule_when_slide_sizes_differ():
    y1, p1, s1 = _val([4], [1], cells=20)      # 20%: infected
    y2, p2, s2 = _val([6], [0], cells=100)     # 6%: uninfected, but more cells called
    y, prob, slides = np.r_[y1, y2], np.r_[p1, p2], np.r_["0", s1, np.char.add(s2, "b")]
    rule, _ = patients.choose_rule(y, prob, slides, 0.5)
    assert rule.kind == "parasitemia" and 0.06 < rule.value <= 0.2
    assert rule.calls(np.array([4, 6]), np.array([20, 100])).tolist() == [True, False]


def test_one_kind_of_slide_falls_back_to_any_parasite_seen():
    y, prob, slides = _val([3, 4], [1, 1])
    rule, how = patients.choose_rule(y, prob, slides, 0.5)
    assert rule == patients.DEFAULT_RULE and "no uninfected slide" in how


def test_slide_rows_estimate_parasitemia_with_an_interval():
    y, prob, slides = _val([5, 0], [1, 0])
    rows = patients.slide_rows(y, prob, slides, 0.5, patients.SlideRule("cells", 1), 0.95)
    (p, low, high, infected, called), second = rows
    assert p == 0.25 and low < 0.25 < high and (infected, called) == (1, 1)
    assert second[0] == 0 and second[3:] == (0, 0) and second[2] > 0
    unlabelled = patients.slide_rows(None, prob, slides, 0.5, patients.SlideRule("cells", 1), 0.95)
    assert unlabelled[0][3] == ""


def test_stored_rule_belongs_to_its_model(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    patients.save(tmp_path / "rule.json", patients.SlideRule("parasitemia", 0.05), "validation", model)
    assert patients.load(tmp_path / "rule.json", model) == patients.SlideRule("parasitemia", 0.05)
    assert json.loads((tmp_path / "rule.json").read_text())["rule"] == "parasitemia >= 0.05"
    model.write_bytes(b"other")
    with pytest.raises(UserError, match="another model"):
        patients.load(tmp_path / "rule.json", model)
