import cv2
import numpy as np

from malaria_cnn.screening import matching, missed, regions, segment, truth
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


def _today_rules(monkeypatch):
    """The rules before stained holes, two flood levels and uncertain objects."""
    monkeypatch.setattr(segment, "PALE_HOLE", 0.0)
    monkeypatch.setattr(segment, "FLOOD_STEPS", 10)
    monkeypatch.setattr(regions, "UNCERTAIN_AREA", 0.0)


def test_large_dark_infected_cells_are_kept_as_uncertain_objects(monkeypatch):
    fields = [make_field(seed, parasitized=0.25, mature=1.0) for seed in range(3)]  # enlarged, oval, pigmented

    def found():
        out = []
        for f in fields:
            seg = segment.segment(f.rgb)
            t = missed.tally(seg.boxes, seg.dropped, seg.dropped_why, f.cells)
            kinds = [seg.kinds[i] for i, (x, y, w, h) in enumerate(seg.boxes)
                     if any(b.kind == "parasitized" and b.contains(x + w / 2, y + h / 2) for b in f.cells)]
            out.append((t, kinds))
        return out

    now = found()
    infected = sum(t["labelled"]["parasitized"] for t, _ in now)
    assert infected >= 25
    assert all(t["found"] == t["labelled"] for t, _ in now)  # every cell, infected or not, found
    kinds = [k for _, ks in now for k in ks]
    assert kinds.count(regions.UNCERTAIN) >= 0.9 * infected  # marked for the classifier and a person to judge
    _today_rules(monkeypatch)
    before = found()
    assert sum(t["found"]["parasitized"] for t, _ in before) <= 0.2 * infected  # dropped as white blood cells
    assert {r for t, _ in before for (_, r) in t["why"]} == {regions.WHITE}


def test_a_stained_hole_is_filled_and_a_gap_between_cells_is_not():
    channel = np.full((60, 90), 20, np.uint8)  # the background's stain
    mask = np.zeros((60, 90), np.uint8)
    cv2.circle(mask, (20, 30), 15, 255, -1)
    cv2.circle(mask, (60, 30), 15, 255, -1)
    cv2.circle(mask, (60, 30), 8, 0, -1)  # a pale inside ...
    channel[mask > 0] = 200
    channel[22:38, 52:68][mask[22:38, 52:68] == 0] = 120  # ... stained more than the background
    filled = segment._fill_stained_holes(mask, channel, level=80, max_area=1000)
    assert filled[30, 60] == 255 and filled[5, 5] == 0
    gap = mask.copy()
    cv2.circle(gap, (60, 30), 8, 255, -1)
    cv2.rectangle(gap, (30, 20), (50, 40), 255, 3)  # a ring of cells around background
    assert segment._fill_stained_holes(gap, np.where(gap > 0, 200, 20).astype(np.uint8), 80, 1000)[30, 40] == 0
