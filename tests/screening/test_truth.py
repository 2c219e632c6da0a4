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
    assert list(boxes) == ["P1.JPG"]
    assert boxes["P1.JPG"] == [Box(10, 20, 30, 40, "uninfected"), Box(50, 20, 30, 30, "parasitized"),
                               Box(90, 20, 30, 30, "difficult")]  # a white cell is not a red cell


def test_reads_coco(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "x/f.png"}],
                                "categories": [{"id": 1, "name": "Red Blood Cell"}, {"id": 2, "name": "gametocyte"}],
                                "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
                                                {"id": 2, "image_id": 7, "category_id": 2, "bbox": [5, 6, 7, 8]},
                                                {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 9, 9],
                                                 "iscrowd": 1}]}))
    assert truth.load(path) == {"f.png": [Box(1, 2, 3, 4, "uninfected"), Box(5, 6, 7, 8, "parasitized"),
                                          Box(0, 0, 9, 9, "difficult")]}


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


def test_a_found_cell_matches_by_centre_in_box_or_iou():
    boxes = [Box(0, 0, 100, 100)]
    assert truth.match(np.array([[60, 60, 100, 100]]), boxes)[0] == []  # centre (110, 110) out, IoU 0.09
    assert truth.match(np.array([[40, 40, 100, 100]]), boxes)[0] == [(0, 0)]  # centre (90, 90) in the box
    assert truth.match(np.array([[-45, 0, 90, 100]]), boxes)[0] == [(0, 0)]  # centre (0, 50) on the edge: in
    assert truth.match(np.array([[-80, 0, 150, 100]]), boxes)[0] == []  # centre out, IoU 0.47
    tall = [Box(0, 0, 20, 200)]
    assert truth.match(np.array([[21, 0, 20, 200]]), tall)[0] == []  # beside it: centre out, IoU 0


def test_matching_is_one_to_one_and_finds_the_most_pairs():
    boxes = [Box(0, 0, 100, 100), Box(90, 0, 100, 100)]
    # found 0 may match either box; found 1 only the second: both must be paired
    found = np.array([[60, 10, 80, 80], [150, 10, 60, 80]])
    pairs, _ = truth.match(found, boxes)
    assert sorted(pairs) == [(0, 0), (1, 1)]
    two_in_one = np.array([[10, 10, 80, 80], [20, 20, 70, 70]])
    assert len(truth.match(two_in_one, boxes[:1])[0]) == 1  # the second is a false positive


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
