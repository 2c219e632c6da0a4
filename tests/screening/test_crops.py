import numpy as np
import pytest

from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import archive, cells_npz, images, manifest
from malaria_cnn.data.preprocess import preprocess
from malaria_cnn.screening import crops, segment


def test_a_cell_is_cut_on_black_in_its_tight_box(fields):
    f = next(iter(fields.values()))
    seg = segment.segment(f.rgb)
    for i in range(len(seg.boxes)):
        cell, mask, (x, y, w, h) = crops.cut(f.rgb, seg, i)
        sx, sy, sw, sh = seg.boxes[i]
        assert sx <= x and sy <= y and x + w <= sx + sw and y + h <= sy + sh  # within the region's box
        assert cell.shape == (h, w, 3) and mask.shape == (h, w)
        assert (cell[~mask] == 0).all() and (cell[mask] == f.rgb[y:y + h, x:x + w][mask]).all()
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()  # tight
        assert (cell[mask].astype(int).sum(axis=1) < 3 * 215).mean() > 0.95  # no halo of background


def test_a_photo_cut_cell_is_decoded_exactly_as_training_decodes_a_crop(tmp_path, fields):
    f = next(iter(fields.values()))
    seg = segment.segment(f.rgb)
    cut = [crops.cut(f.rgb, seg, i)[0] for i in range(6)]
    labels = ["Uninfected", "Parasitized"] * 3  # preprocess wants both classes
    members = [archive.member_name(label, f"C1_IMG_cell_{i}.png") for i, label in enumerate(labels)]
    files = [crops.to_png(crops.trim(c)) for c in cut]
    archive.write(tmp_path / "raw.zip", zip(members, files))
    manifest.write(tmp_path / "manifest.csv", [manifest.ManifestRow(m, label, "C1", manifest.sha256(d))
                                               for m, label, d in zip(members, labels, files)])
    preprocess(tmp_path / "raw.zip", tmp_path / "manifest.csv", tmp_path / "cells.npz", tmp_path / "rejects.csv",
               PreprocessParams(image_size=40, workers=1))
    trained = cells_npz.load(tmp_path / "cells.npz")["x"]
    for c, x in zip(cut, trained):
        screened = crops.model_input(c, 40)[0]
        assert np.array_equal(screened, x)  # bit for bit what preprocess made of the same cell as a file
        assert np.array_equal(images.decode_rgb(crops.to_png(c), min_side=1), c)  # the PNG is lossless


def test_the_rim_is_trimmed_before_scoring(fields):
    f = next(iter(fields.values()))
    seg = segment.segment(f.rgb)
    cell, mask, _ = crops.cut(f.rgb, seg, 0)
    kept = crops.trim(cell).max(axis=2) > 0
    diameter = 2 * np.sqrt(mask.sum() / np.pi)
    assert (kept <= mask).all() and (crops.trim(cell)[kept] == cell[kept]).all()  # pixels only taken away
    band = (1 - np.sqrt(kept.sum() / mask.sum())) / 2  # the share of the diameter trimmed off the rim
    assert band == pytest.approx(crops.TRIM, abs=0.015) and diameter > 20
