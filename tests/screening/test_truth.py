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
    assert boxes["dir/P1.JPG"] == [Box(10, 20, 30, 40, "uninfected"), Box(50, 20, 30, 30, "parasitized"),
                               Box(90, 20, 30, 30, "difficult")]  # a white cell is not a red cell


def test_reads_coco(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "x/f.png"}],
                                "categories": [{"id": 1, "name": "Red Blood Cell"}, {"id": 2, "name": "gametocyte"}],
                                "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
                                                {"id": 2, "image_id": 7, "category_id": 2, "bbox": [5, 6, 7, 8]},
                                                {"id": 3, "image_id": 7, "category_id": 1, "bbox": [0, 0, 9, 9],
                                                 "iscrowd": 1}]}))
    assert truth.load(path) == {"x/f.png": [Box(1, 2, 3, 4, "uninfected"), Box(5, 6, 7, 8, "parasitized"),
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


def _spy(monkeypatch) -> list[tuple[int, int]]:
    """The shapes of the matrices truth hands to linear_sum_assignment."""
    shapes, solve = [], truth.linear_sum_assignment

    def spy(weight, **kw):
        shapes.append(weight.shape)
        return solve(weight, **kw)

    monkeypatch.setattr(truth, "linear_sum_assignment", spy)
    return shapes


def _whole(found: np.ndarray, boxes: list[Box]) -> list[tuple[int, int]]:
    """The one-to-one matching solved on the whole matrix of found cells against labelled boxes."""
    from scipy.optimize import linear_sum_assignment

    arr = np.array([(b.x, b.y, b.w, b.h) for b in boxes], float)
    iou = truth._iou(found, arr)
    cx, cy = found[:, 0:1] + found[:, 2:3] / 2, found[:, 1:2] + found[:, 3:4] / 2
    ok = (iou >= 0.5) | ((cx >= arr[:, 0]) & (cx <= arr[:, 0] + arr[:, 2]) & (cy >= arr[:, 1]) &
                         (cy <= arr[:, 1] + arr[:, 3]))
    rows, cols = linear_sum_assignment(np.where(ok, min(ok.shape) + 1 + iou, 0.0), maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if ok[r, c]]


def test_matching_each_group_of_candidates_apart_gives_the_whole_matching(monkeypatch):
    rng = np.random.default_rng(3)
    found, boxes = [], []
    for gx in range(4):  # clusters 200 px apart, each a tangle of 3-5 cells and 3-5 boxes
        for gy in range(3):
            for _ in range(rng.integers(3, 6)):
                boxes.append(Box(*(200 * np.array([gx, gy]) + rng.uniform(-15, 15, 2)), *rng.uniform(30, 40, 2)))
            for _ in range(rng.integers(3, 6)):
                found.append((*(200 * np.array([gx, gy]) + rng.uniform(-15, 15, 2)), *rng.uniform(30, 40, 2)))
    found = np.array(found)
    shapes = _spy(monkeypatch)
    pairs, _ = truth.match(found, boxes)
    assert pairs == sorted(_whole(found, boxes)) and len(pairs) >= 30
    assert len(shapes) == 12 and max(max(s) for s in shapes) <= 5  # one small problem per cluster


def test_thousands_of_cells_are_matched_group_by_group(monkeypatch):
    boxes = [Box(25 * i, 25 * j, 20, 20, "parasitized" if (i + j) % 7 == 0 else "uninfected")
             for i in range(60) for j in range(50)]
    rng = np.random.default_rng(0)
    found = np.array([(b.x + rng.uniform(-2, 2), b.y + rng.uniform(-2, 2), 20, 20) for b in boxes]
                     + [(b.x + 8, b.y + 8, 12, 12) for b in boxes[::10]])  # every tenth cell found twice
    shapes = _spy(monkeypatch)
    s = truth.score_photo(found, np.zeros(len(found), bool), boxes)
    assert (s.found, s.labelled, s.matched, s.matched_iou50) == (3300, 3000, 3000, 3000)
    assert len(shapes) == 300 and max(max(s) for s in shapes) <= 2
