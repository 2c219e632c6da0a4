import numpy as np
import pytest

from malaria_cnn import archive, manifest
from malaria_cnn.errors import UserError
from malaria_cnn.images import load_cell
from malaria_cnn.preprocess import decode_all, load_npz, preprocess


@pytest.fixture
def raw(tmp_path, small_cells):
    cells = small_cells[:20] + small_cells[-20:]
    records = [manifest.Record(archive.member_name(c.label, c.filename), c.label, c.slide, manifest.sha256(c.data))
               for c in cells]
    archive.write(tmp_path / "cells.zip", [(r.file, c.data) for r, c in zip(records, cells)])
    manifest.write(tmp_path / "manifest.csv", records)
    return tmp_path, cells, records


def test_parallel_decode_equals_the_one_image_function(raw):
    tmp_path, cells, records = raw
    x = decode_all(tmp_path / "cells.zip", records, 32, workers=2)
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8
    for i in (0, 17, 39):
        assert np.array_equal(x[i], load_cell(cells[i].data, 32))


def test_npz_holds_arrays_in_manifest_order(raw):
    tmp_path, cells, records = raw
    line = preprocess(tmp_path / "cells.zip", tmp_path / "manifest.csv", tmp_path / "out" / "cells.npz", 24, 1)
    assert line.startswith("preprocess: 40 cells at 24x24")
    npz = load_npz(tmp_path / "out" / "cells.npz")
    assert npz["x"].shape == (40, 24, 24, 3)
    assert npz["y"].tolist() == [1 if c.label == "Parasitized" else 0 for c in cells]
    assert npz["slide"].tolist() == [c.slide for c in cells]
    assert npz["filename"].tolist() == [r.file for r in records]


def test_a_changed_archive_is_caught_by_its_checksum(raw):
    tmp_path, cells, records = raw
    bad = [manifest.Record(r.file, r.label, r.slide, "0" * 64) if i == 3 else r for i, r in enumerate(records)]
    manifest.write(tmp_path / "manifest.csv", bad)
    with pytest.raises(UserError, match=r"sha256 does not match the manifest"):
        preprocess(tmp_path / "cells.zip", tmp_path / "manifest.csv", tmp_path / "cells.npz", 24, 2)
    assert not (tmp_path / "cells.npz").exists()


def test_missing_inputs_say_which_stage_to_run(tmp_path):
    with pytest.raises(UserError, match="run the ingest stage first"):
        preprocess(tmp_path / "no.zip", tmp_path / "no.csv", tmp_path / "cells.npz", 24, 1)
    with pytest.raises(UserError, match="run the preprocess stage first"):
        load_npz(tmp_path / "cells.npz")
