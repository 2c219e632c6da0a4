"""Stain standardisation, the stain range of the training slides and the check that refers what lies outside it."""

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import PreprocessParams, SyntheticParams
from malaria_cnn.data import archive, cells_npz, images, manifest, stain
from malaria_cnn.data.preprocess import preprocess
from malaria_cnn.data.slides import slide_of
from malaria_cnn.data.sources import Cell, synthetic
from malaria_cnn.release import predict
from malaria_cnn.release.evaluate_command import Crops
from malaria_cnn.screening import crops, segment

SIZE = 32


def shifted(rgb: np.ndarray, factors) -> np.ndarray:
    """The crop as a stain `factors` times as dense (per RGB channel) would show it: OD scaled, black kept."""
    od = -np.log(np.maximum(rgb, 1) / 255.0) * np.asarray(factors, float)
    out = np.clip(np.rint(255 * np.exp(-od)), 1, 255).astype(np.uint8)
    out[rgb.max(axis=2) < stain.BLACK] = 0
    return out


@pytest.fixture(scope="module")
def cells():
    """Synthetic cells as the model takes them (before standardisation) and their slides."""
    found = synthetic.cells(SyntheticParams(per_class=24, slides=8, seed=3))
    rgb = [images.load_cell(c.read(), SIZE, stain_mode="none") for c in found]
    return np.stack(rgb), np.array([slide_of(c.member) for c in found])


def test_a_darker_or_paler_stain_reaches_the_model_as_the_same_cell(cells):
    x, _ = cells
    for factors in ((2.0, 3.0, 1.5), (0.6, 0.7, 0.8)):
        for cell in x[:12]:
            plain, od = stain.standardised(cell)
            darker = shifted(cell, factors)
            moved, od_moved = stain.standardised(darker)
            assert np.allclose(od_moved, od * factors, rtol=0.08)  # the density it measures is the stain's
            inside, core = stain.cell_pixels(darker)
            assert (moved[~core] == stain.REFERENCE_RGB).all()  # no outline: background and rim are the reference
            assert np.abs(moved.astype(int) - plain)[core].mean() < 4  # grey levels lost to rounding only
            assert np.abs(darker.astype(int) - cell)[core].mean() > 15  # it was a real shift


def test_the_median_pixel_of_a_standardised_cell_is_the_reference(cells):
    x, _ = cells
    for cell in x[:12]:
        out, _ = stain.standardised(shifted(cell, (1.7, 2.4, 1.2)))
        inside, core = stain.cell_pixels(out)
        assert np.abs(np.median(out[core], axis=0) - stain.REFERENCE_RGB).max() <= 3


def test_mode_none_leaves_the_crop_as_it_is_and_an_empty_crop_is_left_alone(cells):
    x, _ = cells
    cell = x[0]
    out, od = stain.standardised(cell, "none")
    assert out is cell and od.shape == (3,) and not np.isnan(od).any()
    black = np.zeros((SIZE, SIZE, 3), np.uint8)
    out, od = stain.standardised(black)
    assert (out == 0).all() and np.isnan(od).all()  # nothing to standardise: left as it is
    with pytest.raises(ValueError, match="unknown stain mode"):
        stain.standardised(x[0], "reinhard")


def test_the_tables_per_median_are_the_level_tables_of_any_cell_with_that_median():
    """standardised and the graph read a cell's levels from median_tables by each channel's median: the
    table must be what level_table computes for a cell whose medians differ from channel to channel."""
    tables = stain.median_tables()
    rng = np.random.default_rng(5)
    halves = np.concatenate([rng.integers(0, 511, (400, 3)), [[0, 255, 510], [2, 1, 509]]])  # clamps at both ends
    for h in halves:
        expected = stain.level_table(stain.median_density(h / 2))
        assert np.array_equal(tables[np.arange(3), h].T, expected), h
    assert np.array_equal(tables[:, 511], np.tile(np.arange(256), (3, 1)))  # no cell: the identity


def test_standardised_gives_the_pixels_of_the_median_and_its_level_table(cells):
    """The direct computation the tables stand for: the core's np.median per channel, its level table, the
    reference outside the core."""
    x, _ = cells
    for cell in x[::4]:
        inside, core = stain.cell_pixels(cell)
        od = stain.median_density(np.median(cell[core], axis=0))
        expected = stain.level_table(od)[cell, np.arange(3)]
        expected[~core] = stain.REFERENCE_RGB
        out, got_od = stain.standardised(cell)
        assert np.array_equal(out, expected) and np.array_equal(got_od, od)


def test_a_stain_shift_beyond_the_training_slides_is_referred_and_says_how(cells):
    x, slides = cells
    density = np.stack([stain.density(c) for c in x])
    span = stain.StainRange.of_slides(density, slides)
    assert span.slides == 8 and all(lo <= hi for lo, hi in zip(span.low, span.high))
    own = x[slides == slides[0]]
    assert span.reason(np.stack([stain.density(c) for c in own])) == ""  # a training slide is within
    near = np.stack([stain.density(shifted(c, (1.5, 1.5, 1.5))) for c in own])
    assert span.reason(near) == ""  # within the margin: standardisation undoes it
    dark = np.stack([stain.density(shifted(c, (1.2, 8.0, 1.2))) for c in own])
    why = span.reason(dark)
    assert why.startswith("stain unlike the training data: green ") and "darker than any of the 8 training slides" in why
    pale = np.stack([stain.density(shifted(c, (0.1, 0.1, 0.1))) for c in own])
    assert "paler than any of the 8" in span.reason(pale)
    assert span.reason(dark[: stain.MIN_CELLS - 1]) == ""  # too few cells to say anything


def test_referrals_are_per_group(cells):
    x, slides = cells
    density = np.stack([stain.density(c) for c in x])
    span = stain.StainRange.of_slides(density, slides)
    moved = density.copy()
    moved[slides == slides[0]] *= 5
    names = np.unique(slides)
    why = stain.referrals(span, moved, slides, names)
    assert [bool(w) for w in why] == [n == slides[0] for n in names]
    assert stain.referrals(None, moved, slides, names) == [""] * len(names)


def test_the_stain_range_file_belongs_to_its_model(tmp_path, cells):
    x, slides = cells
    span = stain.StainRange.of_slides(np.stack([stain.density(c) for c in x]), slides)
    (tmp_path / "model.keras").write_bytes(b"one model")
    span.save(tmp_path / "stain_range.json", tmp_path / "model.keras")
    assert stain.StainRange.load(tmp_path / "stain_range.json", tmp_path / "model.keras") == span
    (tmp_path / "other.keras").write_bytes(b"another model")
    with pytest.raises(UserError, match="written for another model"):
        stain.StainRange.load(tmp_path / "stain_range.json", tmp_path / "other.keras")
    with pytest.raises(UserError, match="not found: run `dvc repro`"):
        stain.StainRange.load(tmp_path / "none.json", tmp_path / "model.keras")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserError, match="not a stain range file"):
        stain.StainRange.load(tmp_path / "bad.json", tmp_path / "model.keras")


def test_one_cell_reaches_the_model_bit_for_bit_the_same_by_training_predict_evaluate_and_screen(tmp_path, fields):
    """A cell cut from a photo (screen) is saved as a crop; preprocess (training), predict and evaluate
    read that file: all four give the same model input, standardised, to the bit."""
    f = next(iter(fields.values()))
    seg = segment.segment(f.rgb)
    cuts = [crops.cut(f.rgb, seg, i)[0] for i in range(2)]
    screened = [crops.model_input(c, SIZE)[0] for c in cuts]
    files = [crops.to_png(crops.trim(c)) for c in cuts]
    labels = ["Uninfected", "Parasitized"]
    members = [archive.member_name(label, f"C1_IMG_{i}.png") for i, label in enumerate(labels)]
    archive.write(tmp_path / "raw.zip", zip(members, files))
    manifest.write(tmp_path / "manifest.csv", [manifest.ManifestRow(m, label, "C1", manifest.sha256(d))
                                               for m, label, d in zip(members, labels, files)])
    preprocess(tmp_path / "raw.zip", tmp_path / "manifest.csv", tmp_path / "cells.npz", tmp_path / "rejects.csv",
               PreprocessParams(image_size=SIZE, workers=1))
    trained = cells_npz.load(tmp_path / "cells.npz")["x"]
    predicted = [predict.load(predict.Item(m, d), SIZE)[0] for m, d in zip(members, files)]
    cells = [Cell(m, label, lambda d=d: d) for m, label, d in zip(members, labels, files)]
    evaluated = Crops(cells, SIZE, predict.Limits(), stain.DEFAULT_MODE)[[0, 1]]
    for i in range(2):
        assert not np.array_equal(screened[i], images.load_cell(files[i], SIZE, stain_mode="none"))  # standardised
        for other in (trained[i], predicted[i], evaluated[i]):
            assert np.array_equal(screened[i], other)


def test_a_model_on_crops_as_decoded_is_given_far_less_room(cells):
    x, slides = cells
    density = np.stack([stain.density(c) for c in x])
    own = x[slides == slides[0]]
    darker = np.stack([stain.density(shifted(c, (2.0, 2.0, 2.0))) for c in own])
    assert stain.StainRange.of_slides(density, slides, "od").reason(darker) == ""
    assert "darker than any of the 8" in stain.StainRange.of_slides(density, slides, "none").reason(darker)
