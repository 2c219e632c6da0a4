import numpy as np
import pytest

from malaria_cnn.evaluation import false_calls, gallery


def _slides():
    """a: 10 uninfected, 3 called (one exactly at the threshold) and 2 parasitized; b: 12 uninfected, 6 called;
    c: 20 uninfected, none called; d: 3 uninfected, all called (too few to count); e: parasitized only."""
    parts = [("a", 0, [0.9, 0.8, 0.5] + [0.1] * 7), ("a", 1, [0.9, 0.2]),
             ("b", 0, [0.6, 0.95, 0.7, 0.99, 0.55, 0.8] + [0.2] * 6), ("c", 0, [0.3] * 20),
             ("d", 0, [0.9] * 3), ("e", 1, [0.9] * 4)]
    slides = np.concatenate([[s] * len(p) for s, _, p in parts])
    y = np.concatenate([[label] * len(p) for _, label, p in parts]).astype(int)
    return y, np.concatenate([p for *_, p in parts]), slides


def test_per_slide_counts_uninfected_cells_called_parasitized_at_or_above_the_threshold():
    names, uninfected, false = false_calls.per_slide(*_slides(), 0.5)
    assert names.tolist() == list("abcde")
    assert uninfected.tolist() == [10, 12, 20, 3, 0] and false.tolist() == [3, 6, 0, 3, 0]
    rate = false_calls.rates(uninfected, false)
    assert rate[:4].tolist() == [0.3, 0.5, 0.0, 1.0] and np.isnan(rate[4])
    assert false_calls.slide_rows(*_slides(), 0.5) == [(10, 0.3), (12, 0.5), (20, 0.0), (3, 1.0), (0, "")]


def test_summary_leaves_out_slides_with_few_uninfected_cells():
    s = false_calls.summary(*_slides(), 0.5)
    # counted: a 0.3, b 0.5, c 0.0; d's 3 of 3 would be the max if it counted
    assert s == {"false_call_rate_median": 0.3, "false_call_rate_p90": pytest.approx(0.46, abs=1e-9),
                 "false_call_rate_max": 0.5, "false_call_rate_slides": 3, "false_call_worst_slide": "b"}
    assert false_calls.worst(*_slides(), 0.5) == ("b", 12, 6)
    assert false_calls.describe(s) == "median 30.0%, 90th percentile 46.0%, max 50.0% (slide b)"
    oof = {f"oof_{k}": v for k, v in s.items()}
    assert false_calls.describe(oof, "oof_", median=False) == "90th percentile 46.0%, max 50.0% (slide b)"


def test_summary_is_empty_when_no_slide_counts():
    y, prob, slides = _slides()
    few = np.isin(slides, ["d", "e"])
    s = false_calls.summary(y[few], prob[few], slides[few], 0.5)
    assert s["false_call_rate_slides"] == 0 and s["false_call_worst_slide"] is None
    assert s["false_call_rate_median"] is s["false_call_rate_p90"] is s["false_call_rate_max"] is None
    assert false_calls.describe(s) == "no slide has at least 10 uninfected cells"
    assert false_calls.worst(y[few], prob[few], slides[few], 0.5) is None


def _crops(prob):
    """One solid colour per cell, brighter the more confident: the sheet's order is visible in its pixels."""
    x = np.zeros((len(prob), 16, 16, 3), np.uint8)
    x[..., 0] = np.round(np.asarray(prob) * 250).astype(np.uint8)[:, None, None]
    x[..., 2] = np.arange(len(prob), dtype=np.uint8)[:, None, None]
    return x


def _tile(img, c):
    left = 6 + c * (gallery.TILE + 6)
    return img[40:40 + gallery.TILE - 20, left + 10:left + gallery.TILE - 10]


def test_sheet_shows_the_worst_slides_false_calls_most_confident_first():
    y, prob, slides = _slides()
    x = _crops(prob)
    img = false_calls.worst_slide_sheet(x, y, prob, slides, 0.5, n=4)
    assert img.dtype == np.uint8 and img.shape[2] == 3 and img.shape[1] >= 8 * gallery.TILE
    b = np.flatnonzero(slides == "b")
    expected = b[np.argsort(-prob[b])][:4]  # b's cells at 0.99, 0.95, 0.8, 0.7
    for c, i in enumerate(expected):
        assert (_tile(img, c) == x[i, 0, 0]).all(), c
    assert (_tile(img, 4) == 255).all()  # at most n tiles
    assert (_tile(false_calls.worst_slide_sheet(x, y, prob, slides, 0.5, n=16), 5) == x[b[4], 0, 0]).all()


@pytest.mark.parametrize("keep", [["d", "e"], ["c"]])  # no slide counts; the worst slide has no false call
def test_sheet_says_none_without_a_counted_slide_or_a_false_call(keep):
    y, prob, slides = _slides()
    sel = np.isin(slides, keep)
    img = false_calls.worst_slide_sheet(_crops(prob[sel]), y[sel], prob[sel], slides[sel], 0.5, n=16)
    assert img.shape[0] < gallery.TILE + 100  # one empty row that says so
    assert (_tile(img, 1) == 255).all() and (img[..., 0] == img[..., 2]).all()  # no crop shown, only grey text
