import cv2
import numpy as np

from malaria_cnn.screening import matching, segment, truth
from malaria_cnn.screening.synthetic_field import make_field


def _detection(found_and_boxes):
    scores = {str(i): truth.score_photo(found, np.zeros(len(found), bool), boxes)
              for i, (found, boxes) in enumerate(found_and_boxes)}
    return truth.summarise(scores)["detection"]


def test_finds_the_generated_cells_touching_ones_included(fields):
    runs = [(segment.segment(f.rgb).boxes, f.cells) for f in fields.values()]
    d = _detection(runs)
    # merging touching cells (no watershed) gives F1 about 0.73 on these fields; this gives about 0.99
    assert d["f1"] >= 0.93 and d["precision"] >= 0.93 and d["recall"] >= 0.9, d


def test_white_blood_cells_are_not_red_cells(fields):
    for f in fields.values():
        found = segment.segment(f.rgb).boxes
        assert f.white
        for w in f.white:
            assert not any(w.contains(x + bw / 2, y + bh / 2) for x, y, bw, bh in found)


def test_the_cell_diameter_is_estimated_per_photo_and_can_be_given(fields):
    f = next(iter(fields.values()))
    estimated = segment.segment(f.rgb)
    true = np.median([max(b.w, b.h) for b in f.cells])
    assert 0.75 * true <= estimated.diameter <= 1.1 * true
    given = segment.segment(f.rgb, cell_diameter=true)
    assert given.diameter == true and abs(len(given.boxes) - len(estimated.boxes)) <= 2


def test_a_large_photo_is_segmented_small_and_boxed_in_its_own_pixels():
    f = make_field(7, cells=24)
    big = cv2.resize(f.rgb, None, fx=5, fy=5, interpolation=cv2.INTER_LINEAR)  # 3200x2400, cells 220 px
    seg = segment.segment(big)
    assert seg.scale < 0.25 and seg.labels.shape[1] < 800
    scaled = [truth.Box(b.x * 5, b.y * 5, b.w * 5, b.h * 5, b.kind) for b in f.cells]
    d = _detection([(seg.boxes, scaled)])
    assert d["f1"] >= 0.93, d
    pairs, _ = matching.match(seg.boxes, scaled)
    iou = [matching._iou(seg.boxes[i:i + 1].astype(float), np.array([[scaled[j].x, scaled[j].y, scaled[j].w,
                                                                      scaled[j].h]]))[0, 0] for i, j in pairs]
    assert np.median(iou) >= 0.75


def test_an_empty_photo_has_no_cells():
    blank = np.full((300, 400, 3), 225, np.uint8)
    assert len(segment.segment(blank).boxes) == 0


def test_the_working_copy_is_capped_in_pixels_and_boxes_stay_in_the_photo(monkeypatch):
    f = make_field(3, cells=24)
    h, w = f.rgb.shape[:2]
    small_cells = cv2.resize(f.rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # cells under 26 px: scale 1
    assert segment.segment(small_cells).labels.shape == small_cells.shape[:2]
    cap = small_cells.shape[0] * small_cells.shape[1] // 4
    monkeypatch.setattr(segment, "MAX_WORK_PIXELS", cap)
    seg = segment.segment(small_cells)
    assert seg.labels.size <= 1.01 * cap and abs(seg.scale - 0.5) < 0.01
    assert len(seg.boxes) and (seg.boxes[:, :2] >= 0).all()
    assert (seg.boxes[:, 0] + seg.boxes[:, 2] <= w // 2).all() and (seg.boxes[:, 1] + seg.boxes[:, 3] <= h // 2).all()
