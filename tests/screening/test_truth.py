import json

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.screening import truth
from malaria_cnn.screening.truth import Box


def test_reads_the_iml_layout_with_numbers_as_strings(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"image_name": "dir/P1.JPG", "objects": [
        {"type": "red blood cell", "bbox": {"x": "10", "y": "20", "w": "30", "h": "40"}},
        {"type": "ring", "bbox": {"x": "50", "y": "20", "w": "30", "h": "30"}},
        {"type": "difficult", "bbox": {"x": "90", "y": "20", "w": "30", "h": "30"}},
        {"type": "white blood cell", "bbox": {"x": "90", "y": "90", "w": "60", "h": "60"}}]}]))
    boxes = truth.load(path)
    assert list(boxes) == ["dir/P1.JPG"]  # the name as given: photo_keys matches it
    assert boxes["dir/P1.JPG"] == [Box(10, 20, 30, 40, "uninfected", "red blood cell"),  # the stage is kept
                                   Box(50, 20, 30, 30, "parasitized", "ring"),
                                   Box(90, 20, 30, 30, "difficult", "difficult")]  # a white cell is not a red cell


def test_reads_coco(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "x/f.png"}],
                                "categories": [{"id": 1, "name": "Red Blood Cell"}, {"id": 2, "name": "gametocyte"}],
                                "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
                                                {"id": 2, "image_id": 7, "category_id": 2, "bbox": [5, 6, 7, 8]},
                                                {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 9, 9],
                                                 "iscrowd": 1}]}))
    assert truth.load(path) == {"x/f.png": [Box(1, 2, 3, 4, "uninfected", "red blood cell"),
                                            Box(5, 6, 7, 8, "parasitized", "gametocyte"),
                                            Box(0, 0, 9, 9, "difficult", "red blood cell")]}


@pytest.mark.parametrize("content, message", [
    ("[", "not a readable JSON file"),
    ('{"x": 1}', "not in the IML layout"),
    ('[{"image_name": "a", "objects": [{"type": "platelet", "bbox": {"x": 1, "y": 1, "w": 1, "h": 1}}]}]',
     "unknown object type 'platelet'"),
    ('[{"image_name": "a", "objects": [{"type": "ring", "bbox": {"x": 1, "y": 1, "w": 0, "h": 1}}]}]', "no area"),
    ('[{"image_name": "a", "objects": [{"type": "ring"}]}]', "missing 'bbox'"),
])
def test_bad_truth_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        truth.load(path)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="not found"):
        truth.load(tmp_path / "none.json")


def test_difficult_boxes_are_neither_hits_nor_misses():
    boxes = [Box(0, 0, 50, 50), Box(100, 0, 50, 50, "difficult"), Box(200, 0, 50, 50, "difficult")]
    found = np.array([[0, 0, 50, 50], [100, 0, 50, 50], [105, 5, 40, 40], [300, 0, 50, 50]])
    s = truth.score_photo(found, np.zeros(4, bool), boxes)
    # one hit, the two cells on a difficult box left out, the far one a false positive, the unfound difficult no miss
    assert (s.found, s.labelled, s.matched) == (2, 1, 1)


def test_scores_detection_parasitized_cells_and_parasitemia():
    boxes = [Box(0, 0, 10, 10), Box(20, 0, 10, 10), Box(40, 0, 10, 10, "parasitized"),
             Box(60, 0, 10, 10, "parasitized")]
    found = np.array([[0, 0, 10, 10], [40, 0, 10, 10], [60, 0, 10, 10], [100, 0, 10, 10]])
    called = np.array([False, True, False, True])  # one parasite found, one missed, a false alarm off any box
    s = truth.summarise({"p": truth.score_photo(found, called, boxes)})
    assert s["detection"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75}
    assert s["parasitized"] == {"recall": 0.5, "precision": 0.5}
    assert s["parasitemia_abs_error"]["mean"] == pytest.approx(0.0)  # 2 of 4 found, 2 of 4 labelled
    line = truth.line(s, "d.json")
    assert line.startswith("detection: 3 of 4 labelled red cells found in 1 photos, precision 0.750, recall 0.750, "
                           "F1 0.750; parasitized cells: recall 0.500, precision 0.500")


def test_photos_take_the_labels_of_their_path_then_of_a_base_name_unique_on_both_sides():
    labelled = {"a/DSC_0001.JPG": [], "b/DSC_0001.JPG": [], "dir/P1.png": [], "c/X.png": [], "d/X.png": [],
                "Y.png": []}
    photos = {"in/a/DSC_0001.JPG": "a/DSC_0001.JPG", "in/b/DSC_0001.JPG": "b/DSC_0001.JPG",  # same name, by path
              "in/P1.png": "P1.png",  # its base name is unique in both
              "in/X.png": "X.png",  # two labelled images of that base name: neither
              "one/Y.png": "Y.png", "two/Y.png": "Y.png"}  # two photos of that path: neither
    assert truth.photo_keys(labelled, photos) == {"in/a/DSC_0001.JPG": "a/DSC_0001.JPG",
                                                  "in/b/DSC_0001.JPG": "b/DSC_0001.JPG", "in/P1.png": "dir/P1.png"}


def test_detection_at_iou_50_asks_for_the_overlap_whatever_the_centre():
    boxes = [Box(0, 0, 100, 100), Box(200, 0, 100, 100)]
    found = np.array([[40, 40, 100, 100], [200, 0, 100, 100]])  # the first: centre in its box, IoU 0.22
    s = truth.score_photo(found, np.zeros(2, bool), boxes)
    assert (s.matched, s.matched_iou50) == (2, 1)
    d = truth.summarise({"p": s})
    assert d["detection"]["recall"] == 1.0 and d["detection_iou50"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
