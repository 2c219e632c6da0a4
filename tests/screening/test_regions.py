import cv2
import numpy as np

from malaria_cnn.screening import regions

RED, NUCLEUS = (200, 120, 140), (80, 20, 110)


def _scene():
    """A label map of red cells 30 px across and the odd regions among them, with its RGB and field."""
    labels = np.zeros((200, 400), np.int32)
    rgb = np.full((200, 400, 3), 225, np.uint8)

    def put(i, draw, purple=0.0):
        region = np.zeros(labels.shape, np.uint8)
        draw(region)
        labels[region > 0] = i
        rgb[region > 0] = RED
        ys, xs = np.nonzero(region)
        n = int(purple * len(ys))
        rgb[ys[:n], xs[:n]] = NUCLEUS  # the top rows of the region
    for i, x in enumerate(range(25, 200, 40), start=1):  # five plain cells
        put(i, lambda m, x=x: cv2.circle(m, (x, 25), 15, 1, -1))
    put(6, lambda m: cv2.circle(m, (25, 80), 15, 1, -1), purple=0.3)  # a dark parasite
    put(7, lambda m: cv2.circle(m, (65, 80), 15, 1, -1), purple=0.8)  # a nucleus
    put(8, lambda m: cv2.ellipse(m, (120, 80), (19, 12), 0, 0, 360, 1, -1))  # oval, 1.6 times longer than wide
    put(9, lambda m: cv2.ellipse(m, (180, 80), (30, 11), 0, 0, 360, 1, -1))  # far longer
    put(10, lambda m: cv2.circle(m, (240, 80), 4, 1, -1))  # debris
    put(11, lambda m: cv2.circle(m, (300, 140), 30, 1, -1), purple=0.3)  # four cells' area, purple: a white cell
    put(12, lambda m: cv2.circle(m, (394, 25), 15, 1, -1))  # a cell cut by the frame: 0.7 of one
    return labels, rgb, np.full(labels.shape, 255, np.uint8)


def test_each_region_gets_its_verdict_and_the_rules_keep_what_may_be_infected():
    labels, rgb, field = _scene()
    why = regions.verdicts(labels, rgb, field, radius=15)
    assert why[:5] == [regions.KEPT] * 5
    assert why[5:] == [regions.UNCERTAIN, regions.WHITE, regions.UNCERTAIN, regions.ELONGATED, regions.DEBRIS,
                       regions.WHITE, regions.EDGE]


def test_kept_regions_are_numbered_in_reading_order():
    labels = np.zeros((50, 50), np.int32)
    labels[30:40, 0:10], labels[0:10, 30:40], labels[0:10, 0:10] = 1, 2, 3
    new, old = regions.renumber(labels, np.array([True, False, True]))
    assert list(old) == [2, 0] and new[5, 5] == 1 and new[35, 5] == 2 and new[5, 35] == 0
