import dataclasses

import numpy as np

from malaria_cnn.evaluation import patients, reviewed

from conftest import slide_rule

RULE = dataclasses.replace(slide_rule(), boundary=0.001)  # flags cells from 0.6, recall's lower bound 0.8


def test_labels_answer_for_the_reviewer_slide_by_slide():
    """Three slides of 3,000 cells: a parasite flagged (found by the review), a parasite the model ranks low
    (missed: the review finds nothing and the slide is referred), a healthy slide (no parasite flagged:
    referred, 3,000 cells cannot rule out 0.1%)."""
    prob = np.full(9000, 0.1)
    y = np.zeros(9000, int)
    y[[10, 3010]] = 1
    prob[[10, 11, 12]] = 0.9  # slide a: its parasite and two false flags
    prob[3010], prob[3011] = 0.3, 0.7  # slide b: its parasite scored low, one false flag
    slides = np.repeat(["a", "b", "c"], 3000)
    answers, rows = reviewed.slides(RULE, y, prob, slides)
    assert [a.answer for a in answers] == [patients.INFECTED, patients.REFER, patients.REFER]
    assert [r[:3] for r in rows] == [(1, 1, 1.0), (1, 0, 0.333), (0, 0, 0.0)]
    assert "screen about" in answers[2].reason
    m = reviewed.summary(patients.infected_slides(y, slides), answers, rows, np.array([3000] * 3), 0.95)
    assert m["reviewed_recall"] == 0.5 and m["reviewed_slide_sensitivity"] == 1.0 and m["reviewed_slides_referred"] == 2
    assert m["reviewed_flagged_per_1000_median"] == 0.333 and m["reviewed_healthy_flagged_per_1000_median"] == 0.0
    assert m["reviewed_limit_median"] == round(RULE.review.detection_limit(3000), 6)
    assert "after review of the flagged cells (0.333 per 1,000" in reviewed.describe(m)
    one = reviewed.summary(np.array([True]), answers[:1], rows[:1], np.array([3000]), 0.95)  # no interval of one slide
    assert one["reviewed_recall_ci_lower"] is None and "holding 1.000 of the labelled parasites" in reviewed.describe(one)


def test_photos_count_their_parasites_never_found():
    """screen --truth: a slide's labelled parasites include those the segmentation never cut out."""
    s = RULE.slide(np.array([0.9, 0.1, 0.1]), photos=1)
    a, row = reviewed.slide(RULE, s, np.array([1, 0, 0]), np.array([0.9, 0.1, 0.1]), parasites=3)
    assert a.answer == patients.INFECTED and row[:2] == (3, 1)
