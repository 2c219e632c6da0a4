"""A slide's summary: the model's answer as `screen` gives it, and the reviewed figures beside it."""

from __future__ import annotations

import dataclasses

import pytest

from malaria_cnn.serve import summary

from conftest import slide_rule


_ids = iter(range(1, 1_000_000))


def cell(photo_id, p, answer=None):
    return {"id": next(_ids), "photo_id": photo_id, "p": p, "label": "Parasitized" if p >= 0.5 else "Uninfected",
            "answer": answer}


SLIDE = {"id": 1, "name": "s", "created": 0.0}
PHOTOS = [{"id": 1, "name": "a", "state": "done", "referred": ""}, {"id": 2, "name": "b", "state": "done", "referred": ""},
          {"id": 3, "name": "c", "state": "referred", "referred": "stain"}, {"id": 4, "name": "d", "state": "failed",
                                                                           "referred": ""}]


def test_cells_flagged_are_the_slide_rules_review_set_or_without_one_those_called():
    rule = summary.Rule(0.5, slide_rule())  # flags cells from 0.6
    cells = [cell(1, p) for p in (0.1, 0.3, 0.5, 0.59, 0.6, 0.95)]
    assert [c["id"] in rule.flagged(cells) for c in cells] == [False, False, False, False, True, True]
    assert sorted([0.7, 0.95, 0.6], key=rule.review_order) == [0.95, 0.7, 0.6]  # most likely parasite first
    ranked = summary.Rule(0.5, dataclasses.replace(slide_rule(), review=dataclasses.replace(
        slide_rule().review, min_share=0.2)))  # and the top fifth of each photo: one of photo 2's five
    cells += [cell(2, p) for p in (0.1, 0.2, 0.3, 0.25, 0.05)]
    assert [c["id"] in ranked.flagged(cells) for c in cells] == [False] * 4 + [True] * 2 + [False, False, True] + \
        [False] * 2
    plain = summary.Rule(0.8, None)  # no slide rule: the cells called parasitized
    called = [{**cell(1, p), "label": "Parasitized" if p >= 0.8 else "Uninfected"} for p in (0.5, 0.79, 0.8)]
    assert [c["id"] in plain.flagged(called) for c in called] == [False, False, True]


def test_the_review_counts_confirmed_cells_and_the_models_counted_cells_not_yet_answered():
    rule = summary.Rule(0.5, slide_rule())
    cells = [cell(1, 0.9, "parasitized"), cell(1, 0.8, "uninfected"), cell(1, 0.6), cell(1, 0.4, "not_cell"),
             cell(1, 0.1), cell(2, 0.55, "skip"), cell(2, 0.2), cell(2, 0.2), cell(3, 0.99)]
    s = summary.slide(SLIDE, PHOTOS, cells, rule)
    r = s["review"]
    assert (r["flagged"], r["answered"], r["skipped"], r["not_cell"]) == (3, 2, 1, 1)
    # photo a: 1 confirmed + 1 flagged and counted, not answered (0.6), of 4 red cells; b: none of 3
    assert r["red_cells"] == 7 and r["parasitemia"] == pytest.approx(2 / 7)
    assert 0 <= r["lower"] < 2 / 7 < r["upper"] <= 1 and not r["complete"]
    assert s["photos_total"] == 4 and s["photos_referred"] == 1 and s["photos_failed"] == 1
    assert s["cells_total"] == 8 and s["called"] == 4  # the referred photo's cells are counted apart, as screen does
    assert s["model"]["answer"] in ("infected", "not infected", "refer") and s["model"]["reason"]
    assert s["answer"]["answer"] == "infected" and s["answer"]["reason"] == "1 parasitized cell confirmed"
    assert not s["provisional"]


def test_the_answer_after_a_complete_review_says_what_it_rules_out():
    """2,000 cells in 10 photos, 20 flagged: every one answered uninfected rules out what 2,000 cells can
    (0.19% at a review recall's lower bound of 0.8), not the clinical 0.1%: referred, with the photos to add;
    a skip leaves it incomplete."""
    rule = summary.Rule(0.5, dataclasses.replace(slide_rule(), boundary=0.001))
    photos = [{"id": i, "name": f"p{i}", "state": "done", "referred": ""} for i in range(10)]
    cells = [cell(i, 0.9 if j < 2 else 0.1, "uninfected" if j < 2 else None) for i in range(10) for j in range(200)]
    s = summary.slide(SLIDE, photos, cells, rule)
    assert s["review"]["complete"] and s["answer"]["answer"] == "refer"
    assert "no parasite among 2,000 cells screened" in s["answer"]["reason"] and "more photos" in s["answer"]["reason"]
    assert s["answer"]["detection_limit"] == pytest.approx((1 - 0.05 ** (1 / 2000)) / 0.8)
    assert s["model"]["answer"] != "not infected"
    cells[0]["answer"] = "skip"
    s = summary.slide(SLIDE, photos + [{"id": 99, "name": "q", "state": "queued", "referred": ""}], cells, rule)
    assert not s["review"]["complete"] and "review the 1 cell flagged of 20" in s["answer"]["reason"]
    assert s["provisional"]


def test_the_review_is_complete_when_every_cell_flagged_has_an_answer_other_than_skip():
    rule = summary.Rule(0.5, slide_rule())
    cells = [cell(1, 0.9, "parasitized"), cell(1, 0.65, "uninfected"), cell(1, 0.1)]
    assert summary.slide(SLIDE, PHOTOS[:1], cells, rule)["review"]["complete"]
    cells[1]["answer"] = "skip"
    assert not summary.slide(SLIDE, PHOTOS[:1], cells, rule)["review"]["complete"]


def test_without_a_slide_rule_the_model_says_its_called_share_and_why_it_is_not_corrected():
    s = summary.slide(SLIDE, PHOTOS[:1], [cell(1, 0.9), cell(1, 0.1)], summary.Rule(0.5, None))
    assert s["model"]["parasitemia"] == 0.5 and "not corrected" in s["model"]["reason"]


def test_a_slide_with_every_photo_referred_is_referred_with_the_reason_and_before_any_photo_no_answer():
    rule = summary.Rule(0.5, slide_rule())
    assert summary.slide(SLIDE, PHOTOS[2:3], [], rule)["model"]["answer"] == "refer"
    assert summary.slide(SLIDE, [], [], rule)["model"] is None


def test_the_uncertain_objects_found_are_counted_apart_and_photos_stored_before_kinds_count_none():
    rule = summary.Rule(0.5, slide_rule())
    kinds = ["red cell", "uncertain object", "red cell", "uncertain object", "red cell"]
    cells = [{**cell(1, p), "kind": k} for p, k in zip((0.1, 0.9, 0.2, 0.3, 0.7), kinds)]
    assert summary.photo_counts(rule, cells)["objects"] == 2
    s = summary.slide(SLIDE, PHOTOS[:1], cells, rule)
    assert (s["cells_total"], s["objects_total"]) == (5, 2)
    older = {**PHOTOS[1], "counts": {k: v for k, v in summary.photo_counts(rule, cells).items() if k != "objects"}}
    s = summary.slide(SLIDE, [{**PHOTOS[0], "counts": summary.photo_counts(rule, cells)}, older], [], rule)
    assert (s["cells_total"], s["objects_total"]) == (10, 2)
