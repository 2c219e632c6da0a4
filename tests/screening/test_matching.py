import numpy as np

from malaria_cnn.screening import matching
from malaria_cnn.screening.truth import Box


def test_a_found_cell_matches_by_centre_in_box_or_iou():
    boxes = [Box(0, 0, 100, 100)]
    assert matching.match(np.array([[60, 60, 100, 100]]), boxes)[0] == []  # centre (110, 110) out, IoU 0.09
    assert matching.match(np.array([[40, 40, 100, 100]]), boxes)[0] == [(0, 0)]  # centre (90, 90) in the box
    assert matching.match(np.array([[-45, 0, 90, 100]]), boxes)[0] == [(0, 0)]  # centre (0, 50) on the edge: in
    assert matching.match(np.array([[-80, 0, 150, 100]]), boxes)[0] == []  # centre out, IoU 0.47
    tall = [Box(0, 0, 20, 200)]
    assert matching.match(np.array([[21, 0, 20, 200]]), tall)[0] == []  # beside it: centre out, IoU 0


def test_matching_is_one_to_one_and_finds_the_most_pairs():
    boxes = [Box(0, 0, 100, 100), Box(90, 0, 100, 100)]
    # found 0 may match either box; found 1 only the second: both must be paired
    found = np.array([[60, 10, 80, 80], [150, 10, 60, 80]])
    pairs, _ = matching.match(found, boxes)
    assert sorted(pairs) == [(0, 0), (1, 1)]
    two_in_one = np.array([[10, 10, 80, 80], [20, 20, 70, 70]])
    assert len(matching.match(two_in_one, boxes[:1])[0]) == 1  # the second is a false positive


def _spy(monkeypatch) -> list[tuple[int, int]]:
    """The shapes of the matrices matching hands to linear_sum_assignment."""
    shapes, solve = [], matching.linear_sum_assignment

    def spy(weight, **kw):
        shapes.append(weight.shape)
        return solve(weight, **kw)

    monkeypatch.setattr(matching, "linear_sum_assignment", spy)
    return shapes


def _whole(found: np.ndarray, boxes: list[Box]) -> list[tuple[int, int]]:
    """The one-to-one matching solved on the whole matrix of found cells against labelled boxes."""
    from scipy.optimize import linear_sum_assignment

    arr = np.array([(b.x, b.y, b.w, b.h) for b in boxes], float)
    iou = matching._iou(found, arr)
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
    pairs, _ = matching.match(found, boxes)
    assert pairs == sorted(_whole(found, boxes)) and len(pairs) >= 30
    assert len(shapes) == 12 and max(max(s) for s in shapes) <= 5  # one small problem per cluster


def test_thousands_of_cells_are_matched_group_by_group(monkeypatch):
    boxes = [Box(25 * i, 25 * j, 20, 20, "parasitized" if (i + j) % 7 == 0 else "uninfected")
             for i in range(60) for j in range(50)]
    rng = np.random.default_rng(0)
    found = np.array([(b.x + rng.uniform(-2, 2), b.y + rng.uniform(-2, 2), 20, 20) for b in boxes]
                     + [(b.x + 8, b.y + 8, 12, 12) for b in boxes[::10]])  # every tenth cell found twice
    shapes = _spy(monkeypatch)
    pairs, _ = matching.match(found, boxes)
    assert len(pairs) == 3000
    assert len(shapes) == 300 and max(max(s) for s in shapes) <= 2
