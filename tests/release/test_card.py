from malaria_cnn.core.params import from_dict
from malaria_cnn.evaluation import metrics
from malaria_cnn.release import card

STORED = {"threshold": 0.4321, "rule": "sensitivity", "min_sensitivity": 0.95,
          "chosen_on": {"cells": 80, "slides": 8, "folds": 5, "sensitivity": 1.0, "specificity": 0.9},
          "fold_by_fold": {"sensitivity_mean": 0.96, "sensitivity_sd": 0.02, "sensitivity_min": 0.93,
                           "specificity_mean": 0.9, "specificity_sd": 0.05, "specificity_min": 0.81}}
TEST = {"cells": 200, "slides": 4, **{m: 0.9 for m in metrics.NAMES},
        **{f"{m}_ci_lower": 0.8 for m in metrics.NAMES}, **{f"{m}_ci_upper": 0.95 for m in metrics.NAMES}}
SIZES = {"train": {"Parasitized": 10, "Uninfected": 12, "slides": 3}, "val": {"Parasitized": 0, "Uninfected": 0, "slides": 0},
         "test": {"Parasitized": 5, "Uninfected": 5, "slides": 1},
         "folds": [{"fold": 0, "cells": 12, "parasitized": 5, "slides": 2}, {"fold": 1, "cells": 10, "parasitized": 5, "slides": 1}]}


def _card(**params):
    return card.model_card(from_dict(params), 1234, 64, STORED, TEST, SIZES, "ab" * 32,
                           {"model_int8.tflite": 120_000}, {"TFLite int8": {"agreement": 0.995, "max_probability_difference": 0.1}})


def test_card_says_what_the_model_is_and_how_it_was_checked():
    text = _card(data={"source": "zip", "path": "crops.zip"})
    assert "P(Parasitized) >= **0.432100**" in text and "rule sensitivity (sensitivity >= 0.95)" in text
    assert "zip (crops.zip); raw archive sha256 `" + "ab" * 32 in text
    assert "| Sensitivity | 0.900 | 0.800 - 0.950 |" in text
    assert "| TFLite int8 | 0.9950 | 0.100000 | - |" in text and "64 x 64" in text and "1,234 parameters" in text
    assert "synthetic" not in text
    assert "the out-of-fold predictions of 5 fold models" in text and "the mean of 5 `compact` networks" in text
    assert "sensitivity 0.960 +- 0.020 (lowest 0.930)" in text
    assert "| train, fold 1 | 5 | 5 | 1 |" in text and "| val |" not in text


def test_card_warns_about_synthetic_training_data():
    assert "not for real smears" in _card()


def test_card_marks_a_copy_that_failed_its_parity_check():
    text = card.model_card(from_dict({}), 1, 64, STORED, TEST, SIZES, "ab" * 32, {},
                           {"TFLite int8": {"agreement": 0.9, "max_probability_difference": 0.3, "passed": False}})
    assert "| TFLite int8 | 0.9000 | 0.300000 | **failed: not for use** |" in text


def test_card_says_only_as_much_patient_level_as_the_split_was():
    assert "Split by slide (patient)" in _card() and "slides the model never saw" in _card()
    text = _card(split={"group_by": "none"})
    assert "Split by slide" not in text and "never saw" not in text and "**not** patient-level" in text
    text = card.model_card(from_dict({}), 1, 64, STORED, TEST, SIZES, "ab" * 32, {}, {}, no_slide=7)
    assert "**7 files name no slide**" in text and "never saw" not in text


def test_card_gives_the_interval_it_computed_and_marks_unreliable_ones():
    text = _card(evaluate={"confidence": 0.9, "bootstrap": 300})
    assert "95%" not in text and "90% intervals" in text and "300 slide resamples" in text
    assert "unreliable" not in text
    few = {**TEST, "intervals_reliable": False}
    text = card.model_card(from_dict({}), 1, 64, STORED, few, SIZES, "ab" * 32, {}, {})
    assert "**Intervals unreliable: 4 test slides, fewer than evaluate.min_slides (10)**" in text


def test_card_reports_slide_level_answers():
    slide = {"slide_rule": "infected when the corrected parasitemia's 95% interval lies above 0", "slides_infected": 3,
             "slides_uninfected": 1, **{f"slide_{m}{s}": v for m in ("sensitivity", "specificity", "refer_rate")
                                        for s, v in (("", 1.0), ("_ci_lower", 0.44), ("_ci_upper", 1.0))}}
    text = card.model_card(from_dict({}), 1, 64, STORED, {**TEST, **slide}, SIZES, "ab" * 32, {}, {})
    assert "infected when the corrected parasitemia's 95% interval lies above 0" in text
    assert "| Slide sensitivity (among slides answered) | 1.000 | 0.440 - 1.000 |" in text
    assert "| Slides referred | 1.000 | 0.440 - 1.000 |" in text and "Rogan-Gladen" in text
    assert "only after a person reviews" not in text
    review = {"reviewed_recall": 0.9, "reviewed_recall_ci_lower": 0.8, "reviewed_recall_ci_upper": 0.95,
              "reviewed_flagged_per_1000_median": 21.0, "reviewed_slides_referred": 1,
              **{f"reviewed_slide_{m}{s}": v for m in ("sensitivity", "specificity", "refer_rate")
                 for s, v in (("", 1.0), ("_ci_lower", 0.44), ("_ci_upper", 1.0))}}
    text = card.model_card(from_dict({}), 1, 64, STORED, {**TEST, **slide, **review}, SIZES, "ab" * 32, {}, {})
    assert ("only after a person reviews the cells it flags. With the labels answering for that person, on the "
            "test slides: after review of the flagged cells (21.0 per 1,000 at the median slide, holding 0.900 "
            "(0.800-0.950) of the labelled parasites)") in text


def test_card_names_every_source_its_figures_apart_and_the_model_fine_tuned_from():
    sources = [{"source": "zip", "path": "nih.zip", "name": "nih"}, {"source": "synthetic"}]
    own = {"threshold": 0.3, "sensitivity": 0.9, "specificity": 0.99, "precision": None, "called": 0,
           "labelled_parasitized": 2}
    test = {**TEST, "by_source": {"nih": {**TEST, "cells": 150, "slides": 3, "ppv": 0.75, "own_point": own},
                                  "synthetic": {**TEST, "cells": 50, "slides": 1}}}
    text = card.model_card(from_dict({"data": {"sources": sources}, "train": {"init_from": "models/nih.keras"}}),
                           1, 64, STORED, test, SIZES, "ab" * 32, {}, {})
    assert "Source: `nih`: zip (nih.zip); `synthetic`: synthetic; raw archive" in text
    assert "not for real smears" not in text  # only part of it is synthetic
    assert "| nih | 150 | 3 | 0.900 | 0.900 | 0.750 |" in text and "| synthetic | 50 | 1 |" in text
    assert "one per cross-validation fold, fine-tuned from `models/nih.keras`" in text
    assert "| nih | 0.300 | 0.900 | 0.990 | n/a | 0 / 2 |" in text and "| synthetic | 0." not in text


def test_card_says_what_each_file_takes_and_shows_each_client():
    from malaria_cnn.release import clients

    text = _card()
    assert "Input of every file (`model.keras`, `saved_model/`, both `.tflite` files): raw crops" in text
    assert "standardises the cell's stain itself" in text
    assert all(f"```python\n{code}```" in text for code in clients.CLIENTS.values())
    plain = _card(preprocess={"stain": "none"})
    assert "Input of every file: crops, RGB uint8, 64 x 64 pixels" in plain and "standardises" not in plain
