import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score

from malaria_cnn.core.params import SyntheticParams
from malaria_cnn.data.images import decode_rgb, encode_png
from malaria_cnn.data.slides import slide_of
from malaria_cnn.data.sources import synthetic


def test_deterministic_for_a_seed_and_different_for_another():
    def first(seed):
        return [c.read() for c in synthetic.cells(SyntheticParams(per_class=3, slides=3, seed=seed))]

    assert first(1) == first(1)
    assert first(1) != first(2)


def test_counts_names_and_slides(small_cells):
    labels = [c.label for c in small_cells]
    assert labels.count("Parasitized") == 30 and labels.count("Uninfected") == 30
    for c in small_cells:
        assert c.member.startswith(f"cell_images/{c.label}/C") and c.member.endswith(".png")
    slides = {slide_of(c.member) for c in small_cells}
    infected = {slide_of(c.member) for c in small_cells if c.label == "Parasitized"}
    assert len(slides) == 6 and 1 <= len(infected) < len(slides)  # some slides carry no parasites


def test_cells_look_like_nih_crops(small_cells):
    for c in small_cells[:10]:
        img = decode_rgb(c.read())
        h, w, _ = img.shape
        assert 90 <= h <= 175 and 90 <= w <= 175
        assert img[:3, :3].max() < 40  # black background in the corners
        centre = img[h // 2 - 5 : h // 2 + 5, w // 2 - 5 : w // 2 + 5].reshape(-1, 3).mean(0)
        assert centre[0] > centre[1]  # red cells stained pink-mauve: red above green


def test_mean_colour_does_not_separate_the_classes():
    """A classifier on mean RGB over held-out slides stays near chance, so the CNN must find parasites."""
    cells = synthetic.cells(SyntheticParams(per_class=150, slides=12, seed=3))
    x = np.array([decode_rgb(c.read()).reshape(-1, 3).mean(0) for c in cells])
    y = np.array([c.label == "Parasitized" for c in cells])
    groups = [slide_of(c.member) for c in cells]
    acc = cross_val_score(LogisticRegression(max_iter=1000), x, y, groups=groups, cv=GroupKFold(4)).mean()
    assert acc < 0.7, acc


def test_parasitized_cells_carry_dark_chromatin():
    """The signal is there: more of a parasitized cell is dark purple than of an uninfected one."""
    cells = synthetic.cells(SyntheticParams(per_class=60, slides=6, seed=5))

    def dark_share(c):
        img = decode_rgb(c.read()).astype(int)
        inside = img.sum(2) > 150
        dark = inside & (img[..., 1] < 90) & (img[..., 2] > img[..., 1] + 30)
        return dark.sum() / inside.sum()
    shares = {"Parasitized": [], "Uninfected": []}
    for c in cells:
        shares[c.label].append(dark_share(c))
    assert np.median(shares["Parasitized"]) > 3 * max(np.median(shares["Uninfected"]), 1e-4)


def test_render_is_png_round_trip_stable():
    rgb = synthetic.render_cell(np.random.default_rng(0), synthetic._stain(np.random.default_rng(1)), True)
    assert np.array_equal(decode_rgb(encode_png(rgb)), rgb)
