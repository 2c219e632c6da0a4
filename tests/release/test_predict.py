import csv
import zipfile

import cv2
import numpy as np
import pytest

from malaria_cnn.core.labels import CLASS_NAMES
from malaria_cnn.core.params import PreprocessParams
from malaria_cnn.data import archive, cells_npz, manifest
from malaria_cnn.data.preprocess import preprocess
from malaria_cnn.data.sources import zipped
from malaria_cnn.release import predict


class Recorder:
    """A stand-in model: P(Parasitized) = mean red / 255, and every batch it was given."""

    def __init__(self):
        self.seen = []

    def __call__(self, x):
        self.seen.append(x.copy())
        return x[..., 0].mean(axis=(1, 2)) / 255


def _odd_files():
    rgb = np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)
    return {
        "photo.jpg": cv2.imencode(".jpg", rgb)[1].tobytes(),
        "grey.png": cv2.imencode(".png", rgb[..., 0])[1].tobytes(),
        "alpha.png": cv2.imencode(".png", np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))[1].tobytes(),
    }


def test_predict_sees_exactly_the_arrays_training_saw(tmp_path, small_cells):
    files = {c.member.split("/")[-1]: c.read() for c in small_cells[:5] + small_cells[-5:]} | _odd_files()
    labels = ["Parasitized" if i % 2 else "Uninfected" for i in range(len(files))]
    members = [archive.member_name(label, name) for label, name in zip(labels, files)]
    archive.write(tmp_path / "raw.zip", zip(members, files.values()))
    manifest.write(tmp_path / "manifest.csv",
                   [manifest.ManifestRow(m, label, "C1", manifest.sha256(d)) for m, label, d in zip(members, labels, files.values())])
    preprocess(tmp_path / "raw.zip", tmp_path / "manifest.csv", tmp_path / "cells.npz", tmp_path / "rejects.csv",
               PreprocessParams(image_size=40, workers=1))
    trained = dict(zip(cells_npz.load(tmp_path / "cells.npz")["filename"], cells_npz.load(tmp_path / "cells.npz")["x"]))
    folder = tmp_path / "crops"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    seen = Recorder()
    rows = predict.predict(seen, [folder], size=40, threshold=0.5, batch_size=4)
    arrays = np.concatenate(seen.seen)
    assert len(rows) == len(files) == len(arrays)
    for (path, *_), x in zip(rows, arrays):
        name = path.rsplit("/", 1)[-1]
        label = labels[list(files).index(name)]
        assert np.array_equal(x, trained[archive.member_name(label, name)]), name


def test_folders_zips_and_files_with_bad_ones_reported(tmp_path, small_cells):
    good = [c.read() for c in small_cells[:3]]
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(good[0])
    (folder / "broken.png").write_bytes(good[1][:200])
    (folder / ".hidden.png").write_bytes(good[0])
    (folder / "notes.txt").write_text("not a crop")
    with zipfile.ZipFile(tmp_path / "crops.zip", "w") as zf:
        zf.writestr("x/b.png", good[1])
        zf.writestr("../evil.png", good[2])
        zf.writestr("x/empty.png", b"")
    (tmp_path / "not_a.zip").write_bytes(b"garbage")
    single = tmp_path / "c.png"
    single.write_bytes(good[2])
    rows = predict.predict(Recorder(), [tmp_path / "in", tmp_path / "crops.zip", tmp_path / "not_a.zip", single],
                           size=32, threshold=0.0, batch_size=2)
    by_name = {r[0].replace(str(tmp_path), ""): r for r in rows}
    assert list(by_name) == ["/in/nested/a.png", "/in/nested/broken.png", "/crops.zip:x/b.png",
                             "/crops.zip:../evil.png", "/crops.zip:x/empty.png", "/not_a.zip", "/c.png"]
    for name in ("/in/nested/a.png", "/crops.zip:x/b.png", "/c.png"):
        assert by_name[name][2] == CLASS_NAMES[1] and by_name[name][3] == ""  # threshold 0: all Parasitized
    assert "truncated" in by_name["/in/nested/broken.png"][3]
    assert "unsafe path" in by_name["/crops.zip:../evil.png"][3]
    assert by_name["/crops.zip:x/empty.png"][3] and by_name["/not_a.zip"][3] == "not a zip archive"
    line = predict.summary(rows, 0.0, "out.csv")
    assert line == "predict: 3 cells read, 3 Parasitized (100.0%) at threshold 0.000; 4 files failed (reasons in out.csv) -> out.csv"


@pytest.mark.parametrize("threshold, parasitized", [(0.0, 2), (1.01, 0)])
def test_labels_follow_the_threshold(tmp_path, small_cells, threshold, parasitized):
    for i, c in enumerate(small_cells[:2]):
        (tmp_path / f"{i}.png").write_bytes(c.read())
    rows = predict.predict(Recorder(), [tmp_path], size=16, threshold=threshold, batch_size=8)
    assert sum(r[2] == "Parasitized" for r in rows) == parasitized
    assert all(0 <= r[1] <= 1 for r in rows)


def test_limits_are_the_pipelines_not_built_in(tmp_path, small_cells):
    (tmp_path / "a.png").write_bytes(small_cells[0].read())  # a synthetic crop is 90 to 175 pixels a side
    rows = predict.predict(Recorder(), [tmp_path], size=16, threshold=0.5, batch_size=8, limits=predict.Limits(min_side=200))
    assert rows[0][3].startswith("too small") and rows[0][1] == ""
    rows = predict.predict(Recorder(), [tmp_path], size=16, threshold=0.5, batch_size=8, limits=predict.Limits(max_pixels=100))
    assert rows[0][3].startswith("too large")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        zf.writestr("big.png", small_cells[0].read() + b"\0" * (2 << 20))
    rows = predict.predict(Recorder(), [tmp_path / "c.zip"], size=16, threshold=0.5, batch_size=8,
                           limits=predict.Limits(max_entry_mb=1))
    assert "larger than data.max_entry_mb (1)" in rows[0][3]


def test_rows_reach_the_disk_as_they_are_scored(tmp_path, small_cells):
    from malaria_cnn.core import atomic

    for i, c in enumerate(small_cells[:7]):
        (tmp_path / f"{i}.png").write_bytes(c.read())

    def crashes_on_the_third_batch(x, seen=[]):
        seen.append(1)
        if len(seen) == 3:
            raise RuntimeError("the model crashed")
        return np.full(len(x), 0.7)

    out = tmp_path / "out" / "p.csv"
    with pytest.raises(RuntimeError), atomic.streamed_csv(out, predict.COLUMNS) as writer:
        for row in predict.rows(crashes_on_the_third_batch, [tmp_path], size=16, threshold=0.5, batch_size=2):
            writer.writerow(row)
    assert not out.exists()  # never a file that looks complete
    kept = list(csv.reader(open(out.with_name("p.csv.partial"))))
    assert len(kept) == 1 + 4 and kept[1][1:3] == ["0.7", "Parasitized"]


def test_a_name_that_is_not_utf8_and_repeated_zip_entries_get_rows(tmp_path, small_cells):
    import os

    from malaria_cnn.core import atomic

    folder = tmp_path / "crops"
    folder.mkdir()
    with open(os.fsencode(folder) + b"/caf\xe9.png", "wb") as fh:
        fh.write(small_cells[0].read())
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as zf, pytest.warns(UserWarning):
        zf.writestr("x.png", small_cells[1].read())
        zf.writestr("x.png", small_cells[2].read())
    rows = predict.predict(Recorder(), [folder, tmp_path / "twice.zip"], size=16, threshold=0.5, batch_size=4)
    atomic.write_csv(tmp_path / "p.csv", predict.COLUMNS, rows)  # UnicodeEncodeError before
    assert rows[0][0].endswith("crops/caf%E9.png") and rows[0][3] == ""
    assert [r[3] for r in rows[1:]] == [zipped.REPEATED] * 2


def _phone_photo(rgb: np.ndarray, fmt: str, orientation: int = 1) -> bytes:
    """`rgb` stored turned back by `orientation`, with the EXIF tag that turns it upright for display."""
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored = np.rot90(rgb, 1) if orientation == 6 else rgb  # 6: displayed turned a quarter clockwise
    Image.fromarray(np.ascontiguousarray(stored)).save(out, fmt, exif=exif.tobytes(), quality=95)
    return out.getvalue()


def test_phone_photos_are_read_and_every_file_named_like_an_image_gets_a_row(tmp_path, small_cells):
    crop = cv2.imdecode(np.frombuffer(small_cells[0].read(), np.uint8), cv2.IMREAD_COLOR_RGB)
    crop[:30, :30] = (250, 250, 0)  # a yellow top-left corner: a turned photo is told apart
    jpeg = _phone_photo(crop, "JPEG")
    folder = tmp_path / "phone"
    (folder / ".thumbnails").mkdir(parents=True)
    (folder / "a.heic").write_bytes(_phone_photo(crop, "HEIF", 6))
    (folder / "b.webp").write_bytes(_phone_photo(crop, "WEBP", 6))
    (folder / "c.jpg").write_bytes(_phone_photo(crop, "JPEG", 6))
    (folder / "d.jpg").write_bytes(jpeg + b"\x00\x00\x00\x18ftypmp42" + b"video" * 100)  # a motion photo
    (folder / "e.DNG").write_bytes(b"II*\x00raw sensor data")
    (folder / "f.jxl").write_bytes(b"\xff\x0a not decodable here")
    (folder / "._a.heic").write_bytes(b"resource fork")
    (folder / ".thumbnails" / "a.heic").write_bytes(b"cache")
    (folder / "notes.txt").write_text("not a photo")
    with zipfile.ZipFile(tmp_path / "phone.zip", "w") as zf:
        zf.writestr("DCIM/g.HEIF", _phone_photo(crop, "HEIF"))
        zf.writestr("DCIM/h.nef", b"MM\x00*raw")
        zf.writestr("__MACOSX/DCIM/._g.HEIF", b"resource fork")
    single = tmp_path / "i.dng"
    single.write_bytes(b"II*\x00raw")
    seen = Recorder()
    rows = predict.predict(seen, [folder, tmp_path / "phone.zip", single], size=40, threshold=0.5, batch_size=16)
    by_name = {r[0].replace(str(tmp_path), ""): r[3] for r in rows}
    assert by_name == {
        "/phone/a.heic": "", "/phone/b.webp": "", "/phone/c.jpg": "", "/phone/d.jpg": "",
        "/phone/e.DNG": "DNG raw photos are not supported: export a JPEG",
        "/phone/f.jxl": "not a readable image",
        "/phone.zip:DCIM/g.HEIF": "",
        "/phone.zip:DCIM/h.nef": "NEF raw photos are not supported: export a JPEG",
        "/i.dng": "DNG raw photos are not supported: export a JPEG",
    }
    upright = predict.load(predict.Item("upright.jpg", jpeg), 40)[0]
    for x in np.concatenate(seen.seen):  # every photo decoded upright, as the crop itself
        assert np.abs(x.astype(int) - upright).mean() < 4
