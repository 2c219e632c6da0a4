import os

import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams, TrainParams
from malaria_cnn.data import listing


def test_listing_changes_with_the_files_and_only_with_them(tmp_path):
    root = tmp_path / "crops"
    (root / "Parasitized").mkdir(parents=True)
    (root / "Parasitized" / "a.png").write_bytes(b"one")
    cfg = DataParams(source="folder", path=str(root))
    first = listing.lines(cfg)
    assert first == listing.lines(cfg) and first[0].startswith("Parasitized/a.png\t3\t")
    os.utime(root / "Parasitized" / "a.png", ns=(1, 1))  # the same size, edited in place: a new mtime
    assert listing.lines(cfg) != first
    with open(os.fsencode(root) + b"/caf\xe9.png", "wb"):  # a name that is not UTF-8 is listed too
        pass
    assert listing.write(cfg, tmp_path / "l.tsv") == f"listing: 2 files behind data.path -> {tmp_path / 'l.tsv'}"
    assert "caf%E9.png\t0\t" in (tmp_path / "l.tsv").read_text()


def test_synthetic_and_nih_list_nothing_that_changes():
    assert listing.lines(DataParams()) == ["synthetic: no files to watch"]


def test_the_init_from_line_changes_with_the_models_bytes_not_its_name_or_time(tmp_path):
    model = tmp_path / "nih.keras"
    model.write_bytes(b"weights, version 1")
    os.utime(model, ns=(5, 5))
    cfg = TrainParams(init_from=str(model))
    first = listing.init_from_line(cfg)
    assert first.split("\t")[0] == str(model) and first == listing.init_from_line(cfg)
    os.utime(model, ns=(9, 9))  # touched, the same bytes: the train stages need not rerun
    assert listing.init_from_line(cfg) == first
    model.write_bytes(b"weights, version 2")  # the same size and time, other bytes: they must
    os.utime(model, ns=(5, 5))
    assert listing.init_from_line(cfg) != first

    assert listing.write_init_from(cfg, tmp_path / "i.tsv").startswith(f"train.init_from: {model} (sha256 ")
    assert (tmp_path / "i.tsv").read_text() == listing.init_from_line(cfg) + "\n"
    assert listing.init_from_line(TrainParams()) == listing.init_from_line(TrainParams(seed=1))  # empty: constant
    with pytest.raises(UserError) as info:
        listing.init_from_line(TrainParams(init_from=str(tmp_path / "gone.keras")))
    assert str(info.value) == (f"train.init_from: {tmp_path / 'gone.keras'} not found: it should name a trained "
                               "model.keras, from the project's root or absolute")


def test_a_photos_source_lists_its_boxes_and_several_sources_list_each_one(tmp_path):
    from malaria_cnn.core.params import SourceParams

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    boxes = tmp_path / "boxes.json"
    boxes.write_text("[]")
    one = listing.lines(DataParams(source="photos", path=str(tmp_path / "photos"), boxes=str(boxes)))
    assert len(one) == 2 and any(line.startswith(f"boxes: {boxes}\t2\t") for line in one)
    boxes.write_text("[ ]")  # a box file edited: the listing changes, so ingest reruns
    assert listing.lines(DataParams(source="photos", path=str(tmp_path / "photos"), boxes=str(boxes))) != one
    several = listing.lines(DataParams(sources=(SourceParams(source="photos", path=str(tmp_path / "photos"),
                                                             boxes=str(boxes), name="ours"),
                                                SourceParams(source="synthetic"))))
    assert [line.split(":")[0] for line in several] == ["ours", "ours", "synthetic"]
    with pytest.raises(UserError, match=r"data.sources\[0\].boxes 'nope.json' is not a file"):
        listing.lines(DataParams(sources=(SourceParams(source="photos", path=str(tmp_path / "photos"),
                                                       boxes="nope.json"),)))
