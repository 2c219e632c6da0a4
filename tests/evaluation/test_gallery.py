import numpy as np

from malaria_cnn.evaluation import gallery


def test_mistakes_come_missed_parasitized_first_most_confident_first():
    y = np.array([1, 1, 0, 0, 1, 0])
    prob = np.array([0.4, 0.05, 0.9, 0.6, 0.8, 0.1])
    assert gallery.confident_mistakes(y, prob, 0.5, 10) == [1, 0, 2, 3]
    assert gallery.confident_mistakes(y, prob, 0.5, 3) == [1, 0, 2]
    assert gallery.confident_mistakes(y, prob, 0.5, 2) == [1, 2]  # half the places for false alarms
    assert gallery.confident_mistakes(y, prob, 0.95, 2) == [1, 0]  # none to show: missed cells fill in
    assert gallery.confident_mistakes(y, prob, 0.01, 10) == [2, 3, 5]


def test_mistakes_sheet_shows_each_mistake_enlarged():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    y, prob = np.array([1, 1, 0, 0, 1, 0]), np.array([0.4, 0.05, 0.9, 0.6, 0.8, 0.1])
    img = gallery.mistakes_sheet(x, y, prob, np.array(list("abcdef")), 0.5, n=16, columns=3)
    assert img.dtype == np.uint8 and img.shape[2] == 3
    assert img.shape[1] >= 3 * gallery.TILE and img.shape[0] >= 2 * gallery.TILE  # 4 mistakes: 2 rows of 3
    none = gallery.mistakes_sheet(x, np.array([1, 1, 0, 0, 1, 0]), np.array([.9, .9, .1, .1, .9, .1]),
                                  np.array(list("abcdef")), 0.5, n=16)
    assert none.shape[0] < gallery.TILE + 100  # one empty row that says so


def test_sheet_places_each_tile_where_it_belongs():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    img = gallery.contact_sheet("t", [("A", [(red, "", "")])], columns=1)
    tile = img[40:40 + gallery.TILE - 20, 60:60 + gallery.TILE - 20]
    assert (tile[..., 0] == 255).all() and (tile[..., 1] == 0).all()
