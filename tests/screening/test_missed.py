import numpy as np

from malaria_cnn.screening import missed, regions
from malaria_cnn.screening.truth import Box


def test_a_labelled_cell_is_found_when_a_found_cells_centre_lies_in_its_box():
    boxes = [Box(0, 0, 100, 100, "parasitized", "gametocyte"), Box(200, 0, 80, 80, "uninfected", "red blood cell"),
             Box(400, 0, 80, 80, "difficult", "difficult")]
    found = np.array([[10, 10, 80, 80], [150, -50, 100, 100]])  # the second's centre (200, 0) on the plain box's edge
    t = missed.tally(found, np.zeros((0, 4)), [], boxes)
    assert t["labelled"] == {"gametocyte": 1, "plain": 1} and t["found"] == {"gametocyte": 1, "plain": 1}
    assert not t["missed"]


def test_each_missed_cell_is_put_down_to_a_filter_a_merge_or_the_background():
    boxes = [Box(0, 0, 100, 100, "parasitized", "schizont"),  # a region left out there: its verdict
             Box(100, 0, 100, 100, "uninfected"),  # the found cell centred in it also covers ...
             Box(150, 0, 100, 100, "parasitized", "ring"),  # ... this one's centre (200, 50): merged
             Box(300, 300, 50, 50, "parasitized", "trophozoite"),  # inside a dropped clump centred elsewhere
             Box(700, 700, 50, 50, "parasitized")]  # nothing there
    found = np.array([[80, 0, 150, 100]])  # centre (155, 50): in the plain box (and the ring's)
    dropped = np.array([[20, 20, 60, 60], [250, 250, 300, 300]])
    why = [regions.WHITE, regions.RAGGED]
    t = missed.tally(found, dropped, why, boxes)
    assert t["missed"] == [(0, "schizont", regions.WHITE), (3, "trophozoite", f"merged, {regions.RAGGED}"),
                           (4, "parasitized", missed.NO_REGION)]
    pair = [Box(0, 0, 100, 100), Box(120, 0, 100, 100, "parasitized", "ring")]
    t = missed.tally(np.array([[20, 0, 150, 100]]), np.zeros((0, 4)), [], pair)  # centre (95, 50): the plain cell's
    assert t["missed"] == [(1, "ring", "merged with a plain cell")]
    t = missed.tally(np.array([[40, 0, 140, 100]]), np.zeros((0, 4)), [], pair)  # centre (110, 50): in neither
    assert t["missed"] == [(0, "plain", "merged, centre between cells"), (1, "ring", "merged, centre between cells")]


def test_the_summary_gives_the_share_per_type_and_lists_the_missed_parasites():
    boxes = {"a": [Box(0, 0, 10, 10, "parasitized", "ring"), Box(20, 0, 10, 10, "parasitized", "ring"),
                   Box(40, 0, 10, 10)]}
    t = missed.tally(np.array([[0, 0, 10, 10], [40, 0, 10, 10]]), np.zeros((0, 4)), [], boxes["a"])
    s = missed.summarise({"a": t}, boxes)
    assert s["by_type"]["ring"] == {"labelled": 2, "found": 1, "share": 0.5, "missed_why": {missed.NO_REGION: 1}}
    assert s["by_type"]["plain"]["share"] == 1.0 and s["parasitized"] == {"labelled": 2, "found": 1, "share": 0.5}
    assert s["missed_parasitized"] == [{"photo": "a", "box": [20, 0, 10, 10], "type": "ring", "why": missed.NO_REGION}]
    lines = missed.lines(s)
    assert lines[0].split() == ["ring", "found", "1", "of", "2", "(50.0%);", "missed:", missed.NO_REGION.split()[0],
                                *missed.NO_REGION.split()[1:], "1"]
