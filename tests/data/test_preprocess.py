import csv
import os
import threading

import cv2
import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import archive, cells_npz, manifest
from malaria_cnn.data.images import encode_png, load_cell, read_cell
from malaria_cnn.data.preprocess import decode_all, preprocess


def _raw(tmp_path, items):
    """Write an archive and manifest from (member, label, bytes) items."""
    records = [manifest.ManifestRow(m, label, "C1", manifest.sha256(data)) for m, label, data in items]
    archive.write(tmp_path / "cells.zip", [(m, data) for m, _, data in items])
    manifest.write(tmp_path / "manifest.csv", records)
    return records


@pytest.fixture
def raw(tmp_path, small_cells):
    chosen = small_cells[:20] + small_cells[-20:]
    items = [(c.member, c.label, c.read()) for c in chosen]
    return tmp_path, items, _raw(tmp_path, items)


def _run(tmp_path, **cfg):
    return preprocess(tmp_path / "cells.zip", tmp_path / "manifest.csv", tmp_path / "out" / "cells.npz",
                      tmp_path / "out" / "rejects.csv", PreprocessParams(**cfg))


def test_parallel_decode_equals_the_one_image_function(raw):
    tmp_path, items, records = raw
    x, od, reasons, hashes = decode_all(tmp_path / "cells.zip", records, PreprocessParams(image_size=32, workers=2))
    assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8 and od.shape == (40, 3)
    assert reasons == [None] * 40 and len(set(hashes)) == 40
    for i in (0, 17, 39):
        assert np.array_equal(x[i], load_cell(items[i][2], 32))
        assert np.allclose(od[i], read_cell(items[i][2], 32)[1])


def test_npz_holds_arrays_in_manifest_order(raw):
    tmp_path, items, records = raw
    line = _run(tmp_path, image_size=24, workers=1)
    assert line.startswith("preprocess: 40 cells at 24x24, stain standardised") and "0 rejected" in line
    npz = cells_npz.load(tmp_path / "out" / "cells.npz")
    assert npz["x"].shape == (40, 24, 24, 3)
    assert npz["y"].tolist() == [1 if label == "Parasitized" else 0 for _, label, _ in items]
    assert npz["slide"].tolist() == ["C1"] * 40
    assert npz["filename"].tolist() == [r.file for r in records]
    assert (tmp_path / "out" / "rejects.csv").read_text() == "file,reason\n"


def test_bad_images_are_rejected_with_their_reason(tmp_path, small_cells):
    good = [(c.member, c.label, c.read()) for c in small_cells[:3] + small_cells[-3:]]
    png = good[0][2]
    rgb = np.full((40, 40, 3), 120, np.uint8)
    jpeg = cv2.imencode(".jpg", rgb)[1].tobytes()
    bad = [
        ("cell_images/Parasitized/not_png.png", "Parasitized", b"this is text"),
        ("cell_images/Parasitized/cut.png", "Parasitized", png[: len(png) // 2]),
        ("cell_images/Uninfected/cut.jpg", "Uninfected", jpeg[:-200]),
        ("cell_images/Uninfected/tiny.png", "Uninfected", encode_png(np.zeros((8, 8, 3), np.uint8))),
        ("cell_images/Uninfected/bomb.png", "Uninfected", encode_png(np.zeros((2100, 2100, 3), np.uint8))),
        # the same pixels as good[1], encoded differently: a duplicate ingest cannot see
        ("cell_images/Parasitized/again.png", good[1][1], cv2.imencode(".png", cv2.imdecode(
            np.frombuffer(good[1][2], np.uint8), cv2.IMREAD_COLOR), [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()),
    ]
    _raw(tmp_path, good + bad)
    line = _run(tmp_path, image_size=16, workers=2)
    assert "preprocess: 6 cells" in line and "5 rejected, 1 pixel duplicates" in line
    with open(tmp_path / "out" / "rejects.csv", newline="") as fh:
        rows = {r["file"]: r["reason"] for r in csv.DictReader(fh)}
    assert rows["cell_images/Parasitized/not_png.png"] == "not a readable image"
    assert rows["cell_images/Parasitized/cut.png"] == "truncated file"
    assert rows["cell_images/Uninfected/cut.jpg"] == "truncated file"
    assert rows["cell_images/Uninfected/tiny.png"].startswith("too small: 8x8")
    assert rows["cell_images/Uninfected/bomb.png"].startswith("too large: 2100x2100")
    assert rows["cell_images/Parasitized/again.png"] == f"duplicate of {good[1][0]}"
    assert len(cells_npz.load(tmp_path / "out" / "cells.npz")["y"]) == 6


def test_a_class_left_empty_stops_the_stage(tmp_path, small_cells):
    good = [(c.member, c.label, c.read()) for c in small_cells[:3]]  # Parasitized only usable
    broken = [("cell_images/Uninfected/x.png", "Uninfected", b"garbage")]
    _raw(tmp_path, good + broken)
    with pytest.raises(UserError, match="no usable Uninfected image left after decoding"):
        _run(tmp_path, image_size=16, workers=1)
    assert not (tmp_path / "out" / "cells.npz").exists()


def test_a_changed_archive_is_caught_by_its_checksum(raw):
    tmp_path, items, records = raw
    bad = [manifest.ManifestRow(r.file, r.label, r.slide, "0" * 64) if i == 3 else r for i, r in enumerate(records)]
    manifest.write(tmp_path / "manifest.csv", bad)
    with pytest.raises(UserError, match=r"sha256 does not match the manifest"):
        _run(tmp_path, image_size=24, workers=2)
    assert not (tmp_path / "out" / "cells.npz").exists()


def test_missing_inputs_say_which_stage_to_run(tmp_path):
    with pytest.raises(UserError, match="run the ingest stage first"):
        _run(tmp_path)
    with pytest.raises(UserError, match="run the preprocess stage first"):
        cells_npz.load(tmp_path / "cells.npz")


_FORKS: list[list[str]] = []
_WATCH = []  # set while a test watches forks


def _record_threads_at_fork():
    import threading

    if _WATCH:
        _FORKS.append([t.name for t in threading.enumerate() if t is not threading.main_thread()])


os.register_at_fork(before=_record_threads_at_fork)


def test_workers_are_forked_before_any_thread_of_ours_starts(raw):
    """A thread running in the parent while it forks (tqdm's monitor, say) can leave a lock held in the child."""
    from tqdm import tqdm

    tmp_path, _, records = raw
    if tqdm.monitor is not None:  # left by an earlier bar in this process: stop it, as a fresh stage starts without
        tqdm.monitor.exit()
        tqdm.monitor = None
    before = {t.name for t in threading.enumerate()}
    _FORKS.clear()
    _WATCH.append(True)
    try:
        decode_all(tmp_path / "cells.zip", records, PreprocessParams(image_size=16, workers=2))
    finally:
        _WATCH.clear()
    assert len(_FORKS) == 2  # one per worker
    assert all(set(names) <= before for names in _FORKS), _FORKS
