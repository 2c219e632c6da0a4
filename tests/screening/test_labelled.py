"""Labelled smear photos (data.source photos) -> crops cut as `screen` cuts them -> the raw archive."""

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from malaria_cnn.core.errors import UserError
from malaria_cnn.core.params import DataParams, PreprocessParams, from_dict
from malaria_cnn.core.schema import ParamsError
from malaria_cnn.data import cells_npz, images, manifest
from malaria_cnn.data.ingest import ingest
from malaria_cnn.data.inputs import Item
from malaria_cnn.data.preprocess import preprocess
from malaria_cnn.screening import labelled as photos
from malaria_cnn.screening import synthetic_field, truth
from malaria_cnn.screening.screen import prepare

from conftest import ROOT

SHARED = ROOT.parent / "shared" / "data" / "fields"


def _write_fields(folder: Path, fields: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, f in fields.items():
        (folder / name).write_bytes(images.encode_png(f.rgb))


def _iml(fields: dict, extra: dict | None = None) -> list:
    kinds = {"uninfected": "red blood cell", "parasitized": "ring", "white": "white blood cell"}
    out = []
    for name, f in fields.items():
        objects = [{"type": kinds[b.kind], "bbox": {"x": str(b.x), "y": str(b.y), "w": str(b.w), "h": str(b.h)}}
                   for b in f.cells + f.white]
        out.append({"image_name": name, "objects": objects + (extra or {}).get(name, [])})
    return out


def _ingest(tmp_path: Path, **cfg) -> tuple[str, list[manifest.ManifestRow], dict[str, str]]:
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    line = ingest(DataParams(source="photos", **cfg), out / "raw.zip", out / "manifest.csv", out / "rejects.csv",
                  photos=photos.cells)
    with open(out / "rejects.csv", newline="") as fh:
        rejects = {r["file"]: r["reason"] for r in csv.DictReader(fh)}
    return line, manifest.read(out / "manifest.csv"), rejects


def test_each_labelled_cell_is_the_crop_screen_cuts_and_preprocess_gives_the_model_screens_input(tmp_path, fields):
    _write_fields(tmp_path / "photos", fields)
    (tmp_path / "boxes.json").write_text(json.dumps(_iml(fields)))
    line, rows, _ = _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "boxes.json"))
    assert "ingest photos" in line and {r.label for r in rows} == {"Parasitized", "Uninfected"}
    out = tmp_path / "out"
    preprocess(out / "raw.zip", out / "manifest.csv", out / "cells.npz", out / "pre_rejects.csv",
               PreprocessParams(image_size=48, workers=1))
    trained = cells_npz.load(out / "cells.npz")
    by_file = {str(f): x for f, x in zip(trained["filename"], trained["x"])}
    compared = 0
    for name, f in fields.items():
        data = (tmp_path / "photos" / name).read_bytes()
        screened = prepare(Item(name, data), 48)  # what `malaria-cnn screen` gives the model for this photo
        pairs, _ = truth.match(screened.boxes, f.cells)
        for found, box in pairs:
            x = by_file[photos._member(photos.LABELS[f.cells[box].kind], name, f"box_{box + 1:04d}")]
            assert np.array_equal(x, screened.inputs[found])  # bit for bit
            compared += 1
    assert compared == len(rows) and compared >= 0.8 * sum(len(f.cells) for f in fields.values())


def test_unboxed_found_cells_become_uninfected_crops_when_asked(tmp_path, fields):
    """Every red cell is boxed, so a found cell in no box is something screen meets that is not a red cell
    of either class: with data.unboxed uninfected it is a crop of the negative class, cut as screen cuts it;
    cells on white-cell or difficult boxes stay out."""
    _write_fields(tmp_path / "photos", fields)
    first = next(iter(fields))
    doc = _iml(fields)
    dropped = [o for o in doc[0]["objects"] if o["type"] == "red blood cell"][:3]
    doc[0]["objects"] = [o for o in doc[0]["objects"] if o not in dropped]  # three red cells left unboxed
    (tmp_path / "boxes.json").write_text(json.dumps(doc))
    cfg = {"path": str(tmp_path / "photos"), "boxes": str(tmp_path / "boxes.json")}
    _, skipped, _ = _ingest(tmp_path / "skip", **cfg)
    _, rows, _ = _ingest(tmp_path / "with", **cfg, unboxed="uninfected")
    extra = [r for r in rows if "_found_" in r.file]
    assert len(rows) == len(skipped) + len(extra) and all(r.label == "Uninfected" for r in extra)
    screened = {n: prepare(Item(n, (tmp_path / "photos" / n).read_bytes()), 48) for n in fields}
    for n, f in fields.items():
        boxes = truth.load(tmp_path / "boxes.json", not_red=True)[n]
        anywhere, on_difficult = truth.match(screened[n].boxes, boxes)
        loose = len(screened[n].boxes) - len({i for i, _ in anywhere} | on_difficult)
        assert sum(r.slide == n for r in extra) == loose, n
    assert sum(r.slide == first for r in extra) >= 2  # the dropped boxes' cells, found again
    with pytest.raises(ParamsError, match="data.unboxed must be one of skip, uninfected"):
        from_dict({"data": {"unboxed": "negative"}})


def test_labels_rejects_and_slides(tmp_path, fields, capsys):
    _write_fields(tmp_path / "photos", fields)
    first = next(iter(fields))
    far = {"type": "ring", "bbox": {"x": "2", "y": "2", "w": "6", "h": "6"}}  # a box on no cell
    odd = {"type": "difficult", "bbox": {"x": "20", "y": "20", "w": "30", "h": "30"}}
    doc = _iml(fields, {first: [far, odd]}) + [{"image_name": "missing.png", "objects": []}]
    (tmp_path / "boxes.json").write_text(json.dumps(doc))
    (tmp_path / "photos" / "unlabelled.png").write_bytes(images.encode_png(fields[first].rgb))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    doc.append({"image_name": "broken.jpg", "objects": []})
    (tmp_path / "boxes.json").write_text(json.dumps(doc))
    line, rows, rejects = _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "boxes.json"))

    reasons = list(rejects.values())
    assert reasons.count(photos.LEFT_OUT["difficult"]) == 1
    assert reasons.count(photos.LEFT_OUT[truth.NOT_RED]) == sum(len(f.white) for f in fields.values())
    assert any(k.startswith(f"{first}#box") and v == photos.UNMATCHED and "(2,2,6,6)" in k for k, v in rejects.items())
    assert rejects["unlabelled.png"] == photos.NO_BOXES
    assert "broken.jpg" in rejects and rejects["broken.jpg"] != photos.NO_BOXES
    assert rejects[f"{tmp_path / 'boxes.json'}: missing.png"].startswith("labelled in data.boxes, but no such photo")
    labelled = sum(len(f.cells) for f in fields.values())
    unmatched = sum(v == photos.UNMATCHED for v in reasons) - 1
    assert len(rows) + unmatched == labelled  # every red-cell box is a crop or a reported reject
    expected = {n: sum(b.kind == "parasitized" for b in f.cells) for n, f in fields.items()}
    got = {n: sum(r.label == "Parasitized" and r.slide == n for r in rows) for n in fields}
    assert all(got[n] <= expected[n] for n in fields) and sum(got.values()) >= 0.8 * sum(expected.values())
    assert {r.slide for r in rows} == set(fields)  # each photo its own slide, and a warning says so
    assert "each of those photos is its own slide" in capsys.readouterr().err


def test_slides_from_the_pattern_or_from_coco_and_a_zip_of_photos(tmp_path, fields):
    renamed = {f"P{i % 2}_{name}": f for i, (name, f) in enumerate(fields.items())}
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        for name, f in renamed.items():
            zf.writestr(f"smears/{name}", images.encode_png(f.rgb))
    doc = synthetic_field.coco(renamed)
    (tmp_path / "boxes.coco.json").write_text(json.dumps(doc))
    _, rows, _ = _ingest(tmp_path, path=str(tmp_path / "photos.zip"), boxes=str(tmp_path / "boxes.coco.json"),
                         slide_pattern=r"^(P\d+)_")
    assert {r.slide for r in rows} == {"P0", "P1"}
    for image in doc["images"]:  # the review page's export names each photo's slide
        image["slide"] = "S7-ward 3"
    (tmp_path / "boxes.coco.json").write_text(json.dumps(doc))
    _, rows, _ = _ingest(tmp_path, path=str(tmp_path / "photos.zip"), boxes=str(tmp_path / "boxes.coco.json"))
    assert {r.slide for r in rows} == {"S7-ward 3"}


def test_one_line_errors(tmp_path, fields):
    with pytest.raises(ParamsError, match="data.boxes must name"):
        from_dict({"data": {"source": "photos", "path": "photos"}})
    _write_fields(tmp_path / "photos", fields)
    with pytest.raises(UserError, match="data.boxes: .* not found"):
        _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text(json.dumps([{"image_name": "a.png", "objects": [
        {"type": "platelet", "bbox": {"x": 1, "y": 1, "w": 2, "h": 2}}]}]))
    with pytest.raises(UserError, match="unknown object type 'platelet'"):
        _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "bad.json"))
    uninfected_only = [{**e, "objects": [o for o in e["objects"] if o["type"] == "red blood cell"]} for e in _iml(fields)]
    (tmp_path / "plain.json").write_text(json.dumps(uninfected_only))
    with pytest.raises(UserError, match="no Parasitized cell found in the photos"):
        _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "plain.json"))


def test_the_shared_photos_give_most_of_their_labelled_cells(tmp_path):
    folder = SHARED / "iml_malaria_dark"
    if not (folder / "annotations.json").is_file():
        pytest.skip(f"the labelled smear photos are not here ({folder}); CI provides them")
    doc = json.loads((folder / "annotations.json").read_text())[:4]
    (tmp_path / "photos").mkdir()
    for entry in doc:
        (tmp_path / "photos" / entry["image_name"]).write_bytes((folder / entry["image_name"]).read_bytes())
    (tmp_path / "boxes.json").write_text(json.dumps(doc))
    line, rows, rejects = _ingest(tmp_path, path=str(tmp_path / "photos"), boxes=str(tmp_path / "boxes.json"))
    boxes = [o for e in doc for o in e["objects"]]
    parasitized = sum(o["type"] in truth.PARASITIZED_TYPES for o in boxes)
    assert len(rows) + len(rejects) == len(boxes)
    assert len(rows) >= 0.9 * len(boxes), line  # measured 2026-12-04 on the dark batch's first 4 photos
    assert sum(r.label == "Parasitized" for r in rows) >= 0.8 * parasitized
