import numpy as np
import pytest

from malaria_cnn import evaluate


def test_scores_on_a_hand_counted_example():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # 1 = Parasitized
    prob = np.array([0.9, 0.8, 0.6, 0.2, 0.1, 0.3, 0.7, 0.4, 0.05, 0.2])
    m = evaluate.scores(y, prob, threshold=0.5)
    assert m["counts"] == {"cells": 10, "tp": 3, "fp": 1, "tn": 5, "fn": 1}
    assert m["accuracy"] == 0.8 and m["sensitivity"] == 0.75
    assert m["specificity"] == pytest.approx(5 / 6, abs=1e-6) and m["precision"] == 0.75
    assert m["f1"] == 0.75
    assert m["roc_auc"] == pytest.approx(19.5 / 24, abs=1e-6)  # pairs ranked right; a tie counts half
    p_true = np.where(y == 1, prob, 1 - prob)
    assert m["loss"] == pytest.approx(-np.log(p_true).mean(), abs=1e-6)


def test_threshold_moves_the_calls():
    y, prob = np.array([1, 0]), np.array([0.4, 0.3])
    assert evaluate.scores(y, prob, 0.5)["sensitivity"] == 0.0
    assert evaluate.scores(y, prob, 0.35)["sensitivity"] == 1.0


def test_one_class_only_leaves_undefined_metrics_empty():
    m = evaluate.scores(np.array([0, 0]), np.array([0.1, 0.2]), 0.5)
    assert m["roc_auc"] is None and m["sensitivity"] is None and m["specificity"] == 1.0
    assert evaluate.roc_rows(np.array([0, 0]), np.array([0.1, 0.2])) == []
    assert "n/a" in evaluate.summary(m)


def test_plot_rows():
    y, prob = np.array([1, 0, 1]), np.array([0.9, 0.6, 0.2])
    assert evaluate.confusion_rows(y, prob, 0.5) == [
        ("Parasitized", "Parasitized"), ("Uninfected", "Parasitized"), ("Parasitized", "Uninfected")]
    roc = evaluate.roc_rows(y, prob)
    assert roc[0][:2] == (0.0, 0.0) and roc[-1][:2] == (1.0, 1.0)
    assert all(0 <= t <= 1 for _, _, t in roc)
