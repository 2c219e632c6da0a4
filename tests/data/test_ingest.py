import csv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import ClassDirs, DataParams, SyntheticParams
from malaria_cnn.data import manifest
from malaria_cnn.data.images import encode_png
from malaria_cnn.data.ingest import ingest
from malaria_cnn.data.sources import zipped


def _ingest(tmp_path: Path, **cfg) -> tuple[str, list[manifest.ManifestRow], dict[str, str]]:
    from malaria_cnn.screening import labelled

    out = tmp_path / "raw"
    line = ingest(DataParams(**cfg), out / "cell_images.zip", out / "manifest.csv", out / "rejects.csv",
                  photos=labelled.cells)
    with open(out / "rejects.csv", newline="") as fh:
        rejects = {r["file"]: r["reason"] for r in csv.DictReader(fh)}
    return line, manifest.read(out / "manifest.csv"), rejects


def _check_archive_matches(tmp_path: Path, records: list[manifest.ManifestRow]) -> None:
    with zipfile.ZipFile(tmp_path / "raw" / "cell_images.zip") as zf:
        for r in records:
            assert manifest.sha256(zf.read(r.file)) == r.sha256


def _png(seed: int, side: int = 40) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def test_synthetic_ingest_writes_the_nih_layout_and_a_true_manifest(tmp_path):
    line, records, rejects = _ingest(tmp_path, synthetic=SyntheticParams(per_class=5, slides=3, seed=1))
    assert line.startswith("ingest synthetic: 10 cells (5 Parasitized, 5 Uninfected) from ")
    assert "0 rejected" in line and rejects == {}
    with zipfile.ZipFile(tmp_path / "raw" / "cell_images.zip") as zf:
        assert zf.namelist() == [r.file for r in records]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    _check_archive_matches(tmp_path, records)
    assert all(r.file.startswith(f"cell_images/{r.label}/C") and r.slide.startswith("C9") for r in records)


@pytest.fixture
def lab_folder(tmp_path) -> Path:
    """A lab's folder: odd letter case, a nested duplicate copy, system files, broken and stray files."""
    root = tmp_path / "lab"
    files = {
        "cell_images/parasitized/C1P1_IMG_a_cell_1.png": _png(1),
        "cell_images/parasitized/C2P2_IMG_a_cell_2.png": _png(2),
        "cell_images/UNINFECTED/C3P3_IMG_a_cell_3.png": _png(3),
        "cell_images/UNINFECTED/sub/C4P4_IMG_a_cell_4.jpg": _png(4),
        # Kaggle's nested copy of the whole set
        "cell_images/cell_images/parasitized/C1P1_IMG_a_cell_1.png": _png(1),
        "cell_images/cell_images/UNINFECTED/C3P3_IMG_a_cell_3.png": _png(3),
        # the same image under both classes
        "cell_images/parasitized/C5P5_IMG_a_cell_5.png": _png(5),
        "cell_images/UNINFECTED/C5P5_IMG_b_cell_5.png": _png(5),
        # not crops: skipped quietly
        "cell_images/parasitized/Thumbs.db": b"x",
        "cell_images/UNINFECTED/.DS_Store": b"x",
        "cell_images/UNINFECTED/notes.txt": b"x",
        # reported
        "cell_images/UNINFECTED/empty.png": b"",
        "stray/C9P9_IMG_a_cell_9.png": _png(9),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_folder_source_accounts_for_every_file(tmp_path, lab_folder):
    line, records, rejects = _ingest(tmp_path, source="folder", path=str(lab_folder))
    assert sorted(r.file for r in records) == [
        "cell_images/Parasitized/C1P1_IMG_a_cell_1.png",
        "cell_images/Parasitized/C2P2_IMG_a_cell_2.png",
        "cell_images/Uninfected/C3P3_IMG_a_cell_3.png",
        "cell_images/Uninfected/sub/C4P4_IMG_a_cell_4.jpg",
    ]
    assert {r.slide for r in records} == {"C1", "C2", "C3", "C4"}
    assert rejects["stray/C9P9_IMG_a_cell_9.png"] == "not inside a folder named Parasitized or Uninfected"
    assert rejects["cell_images/UNINFECTED/empty.png"] == "empty file"
    assert rejects["cell_images/cell_images/parasitized/C1P1_IMG_a_cell_1.png"] == (
        "duplicate of cell_images/parasitized/C1P1_IMG_a_cell_1.png")
    assert rejects["cell_images/parasitized/C5P5_IMG_a_cell_5.png"].startswith("label conflict")
    assert rejects["cell_images/UNINFECTED/C5P5_IMG_b_cell_5.png"].startswith("label conflict")
    assert len(rejects) == 6
    assert "4 cells (2 Parasitized, 2 Uninfected)" in line and "2 rejected, 4 duplicates" in line
    assert "3 non-image files skipped" in line
    _check_archive_matches(tmp_path, records)


def test_class_folder_names_come_from_params(tmp_path, lab_folder):
    for copy in ("cell_images", "cell_images/cell_images"):
        (lab_folder / copy / "parasitized").rename(lab_folder / copy / "infected")
    with pytest.raises(UserError, match="no usable Parasitized image found in .* \\(looked for a folder named 'Parasitized'"):
        _ingest(tmp_path, source="folder", path=str(lab_folder))
    _, records, _ = _ingest(tmp_path, source="folder", path=str(lab_folder),
                            class_dirs=ClassDirs(Parasitized="Infected", Uninfected="uninfected"))
    assert {r.label for r in records} == {"Parasitized", "Uninfected"}


def test_missing_folder_or_zip_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        _ingest(tmp_path, source="folder", path=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="not found"):
        _ingest(tmp_path, source="zip", path=str(tmp_path / "nowhere.zip"))
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(UserError, match="is not a zip archive"):
        _ingest(tmp_path, source="zip", path=str(tmp_path / "fake.zip"))


def _mark_encrypted(path: Path, name: str) -> None:
    """Set the 'encrypted' flag of one entry in its local and central headers (zipfile cannot write one)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        data[zf.getinfo(name).header_offset + 6] |= 0x1
    central = data.find(b"PK\x01\x02")
    while central != -1:
        if data[central + 46 : central + 46 + len(name)] == name.encode():
            data[central + 8] |= 0x1
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_zip_source_rejects_unsafe_entries(tmp_path):
    src = tmp_path / "crafted.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("cell_images/Parasitized/C1P1_IMG_x_cell_1.png", _png(1))
        zf.writestr("cell_images/Uninfected/C2P2_IMG_x_cell_2.png", _png(2))
        zf.writestr("cell_images/Uninfected/C2P2_IMG_x_cell_3.png", _png(3, side=1200))  # 4.1 MB stored
        zf.writestr("../../etc/Parasitized/evil.png", _png(4))
        zf.writestr("/abs/Parasitized/evil.png", _png(5))
        link = zipfile.ZipInfo("cell_images/Parasitized/link.png")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("cell_images/Uninfected/locked.png", b"ciphertext")
        zf.writestr("cell_images/__MACOSX/._x.png", b"junk")
    _mark_encrypted(src, "cell_images/Uninfected/locked.png")
    line, records, rejects = _ingest(tmp_path, source="zip", path=str(src), max_entry_mb=2)
    assert [r.file for r in records] == ["cell_images/Parasitized/C1P1_IMG_x_cell_1.png",
                                         "cell_images/Uninfected/C2P2_IMG_x_cell_2.png"]
    assert rejects["../../etc/Parasitized/evil.png"].startswith("unsafe path")
    assert rejects["/abs/Parasitized/evil.png"].startswith("unsafe path")
    assert rejects["cell_images/Parasitized/link.png"] == "symbolic link"
    assert rejects["cell_images/Uninfected/locked.png"] == "encrypted entry"
    assert rejects["cell_images/Uninfected/C2P2_IMG_x_cell_3.png"].startswith("entry of 4.1 MB is larger than")
    assert (tmp_path / "raw" / "cell_images.zip").read_bytes() == src.read_bytes()  # kept as it came
    with pytest.raises(UserError, match="would unpack to .* more than data.max_total_mb"):
        _ingest(tmp_path, source="zip", path=str(src), max_total_mb=1)


def test_real_nih_zip_in_place(tmp_path, nih_dev_zip):
    line, records, rejects = _ingest(tmp_path, source="zip", path=str(nih_dev_zip))
    assert len(records) + len(rejects) == 8511
    assert len({r.slide for r in records}) == 49
    assert all(r.slide.startswith("C") and r.slide[1:].isdigit() for r in records)
    labels = [r.label for r in records]
    assert labels.count("Parasitized") + labels.count("Uninfected") == len(records) > 8000
    assert line.startswith(f"ingest zip: {len(records):,} cells")


def test_real_nih_crops_as_a_nested_folder(tmp_path, nih_dev_zip):
    """Kaggle's layout: cell_images/ and a full copy in cell_images/cell_images/; each crop counted once."""
    root = tmp_path / "kaggle"
    with zipfile.ZipFile(nih_dev_zip) as zf:
        names = [n for n in zf.namelist() if n.endswith(".png")][::100]
        for prefix in ("", "cell_images/"):
            for n in names:
                path = root / prefix / n
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(zf.read(n))
    _, records, rejects = _ingest(tmp_path, source="folder", path=str(root))
    assert len(records) + sum(not r.startswith("duplicate of") for r in rejects.values()) == len(names)
    assert sum(r.startswith("duplicate of") for r in rejects.values()) == len(names)


def test_a_file_name_that_is_not_utf8_is_kept_under_a_safe_name(tmp_path):
    import os

    from malaria_cnn.core.params import PreprocessParams
    from malaria_cnn.data.preprocess import preprocess

    root = tmp_path / "lab"
    for label, seed in (("Parasitized", 1), ("Uninfected", 2)):
        (root / label).mkdir(parents=True)
        (root / label / f"C{seed}P1_IMG_ok.png").write_bytes(_png(seed))
    os.makedirs(os.fsencode(root / "Uninfected"), exist_ok=True)
    with open(os.fsencode(root / "Uninfected") + b"/C7P1_IMG_caf\xe9.png", "wb") as fh:  # Latin-1, as old Windows
        fh.write(_png(7))
    with open(os.fsencode(root) + b"/stray_\xff.png", "wb") as fh:  # outside the class folders: a reject
        fh.write(_png(8))
    line, records, rejects = _ingest(tmp_path, source="folder", path=str(root))
    assert "3 cells" in line and "cell_images/Uninfected/C7P1_IMG_caf%E9.png" in [r.file for r in records]
    assert list(rejects) == ["stray_%FF.png"]
    _check_archive_matches(tmp_path, records)
    out = preprocess(tmp_path / "raw/cell_images.zip", tmp_path / "raw/manifest.csv", tmp_path / "cells.npz",
                     tmp_path / "rejects.csv", PreprocessParams(image_size=16, workers=1))
    assert out.startswith("preprocess: 3 cells")


def test_two_zip_entries_of_one_name_are_rejected_not_a_changed_archive(tmp_path):
    from malaria_cnn.core.params import PreprocessParams
    from malaria_cnn.data.preprocess import preprocess

    crops = tmp_path / "crops.zip"
    with zipfile.ZipFile(crops, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("Parasitized/C1P1_IMG_a.png", _png(1))
        zf.writestr("Uninfected/C2P1_IMG_b.png", _png(2))
        zf.writestr("Uninfected/C3P1_IMG_twice.png", _png(3))
        zf.writestr("Uninfected/C3P1_IMG_twice.png", _png(4))
    line, records, rejects = _ingest(tmp_path, source="zip", path=str(crops))
    assert "2 cells" in line and rejects == {"Uninfected/C3P1_IMG_twice.png": zipped.REPEATED}
    out = preprocess(tmp_path / "raw/cell_images.zip", tmp_path / "raw/manifest.csv", tmp_path / "cells.npz",
                     tmp_path / "rejects.csv", PreprocessParams(image_size=16, workers=1))
    assert out.startswith("preprocess: 2 cells")


def test_several_sources_go_into_one_archive_each_cell_with_its_source_and_a_slide_of_its_own(tmp_path, fields):
    from malaria_cnn.core.params import SourceParams
    from malaria_cnn.screening.synthetic_field import coco

    (tmp_path / "photos").mkdir()
    for name, f in fields.items():
        (tmp_path / "photos" / name).write_bytes(encode_png(f.rgb))
    (tmp_path / "boxes.json").write_text(__import__("json").dumps(coco(fields)))
    crops = tmp_path / "crops.zip"
    with zipfile.ZipFile(crops, "w") as zf:  # a lab's crops, named as NIH names them: slides C1 and C2
        for i in range(8):
            zf.writestr(f"lab/{('Parasitized', 'Uninfected')[i % 2]}/C{1 + i % 2}P1_IMG_{i}.png", _png(100 + i))
    sources = (SourceParams(source="zip", path=str(crops)),
               SourceParams(source="photos", path=str(tmp_path / "photos"), boxes=str(tmp_path / "boxes.json"),
                            name="smears"),
               SourceParams(source="synthetic"))
    line, rows, rejects = _ingest(tmp_path, sources=sources, synthetic=SyntheticParams(per_class=6, slides=3, seed=3))
    by_source = {s: [r for r in rows if r.source == s] for s in ("crops", "smears", "synthetic")}
    assert [len(v) for v in by_source.values()] == [8, len(by_source["smears"]), 12] and by_source["smears"]
    assert "sources crops (8), smears (" in line and "synthetic (12)" in line
    assert {r.slide for r in by_source["crops"]} == {"crops/C1", "crops/C2"}
    assert {r.slide for r in by_source["smears"]} == {f"smears/{n}" for n in fields}
    assert all(r.slide.startswith("synthetic/") for r in by_source["synthetic"])
    assert all(r.file.startswith(f"cell_images/{r.label}/{r.source}/") for r in rows)
    _check_archive_matches(tmp_path, rows)
    assert any(k.startswith("smears: field_0.png#box") for k in rejects)  # the white cells, named with their source


def test_a_zip_among_several_sources_is_read_in_place_and_its_unsafe_entries_rejected(tmp_path):
    from malaria_cnn.core.params import SourceParams

    crops = tmp_path / "crops.zip"
    with zipfile.ZipFile(crops, "w") as zf:
        zf.writestr("../evil/Parasitized/C1_IMG_x.png", _png(1))
        for i in range(4):
            zf.writestr(f"{('Parasitized', 'Uninfected')[i % 2]}/C{i}_IMG_{i}.png", _png(10 + i))
    _, rows, rejects = _ingest(tmp_path, sources=(SourceParams(source="zip", path=str(crops), name="a"),
                                                  SourceParams(source="zip", path=str(crops), name="b")))
    assert {r.source for r in rows} == {"a"} and len(rows) == 4  # b's crops are a's, byte for byte: kept once
    assert "a: ../evil/Parasitized/C1_IMG_x.png" in rejects and "b: ../evil/Parasitized/C1_IMG_x.png" in rejects
    assert crops.is_file() and zipfile.ZipFile(crops).namelist()[0].startswith("../")  # the input is left alone
