"""serve/export.py: the corrections zip is what the pipeline's zip source reads, with valid COCO boxes beside.

(Named test_serve_export.py: tests/release/test_export.py exists, and test folders have no __init__.py,
so two test_export.py files would collide on import.)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from malaria_cnn.core.params import DataParams
from malaria_cnn.data import archive
from malaria_cnn.data.slides import slide_of
from malaria_cnn.data.sources import is_quietly_skipped, zipped
from malaria_cnn.serve import export, export_zip
from malaria_cnn.serve.export import ExportCell, ExportPhoto

SHA = "ab" * 32
WHEN = "2024-05-06T07:08:09Z"


def png(seed: int) -> bytes:
    """A small distinct crop, as PNG bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    return cv2.imencode(".png", pixels)[1].tobytes()


def photo(pid: int, slide_id: int = 1, slide: str = "Ward 3", width: int = 200, height: int = 100) -> ExportPhoto:
    return ExportPhoto(id=pid, slide_id=slide_id, slide=slide, name=f"IMG_{pid:04d}.jpg", width=width, height=height)


def cell(cid: int, on: ExportPhoto, answer: str | None = None, flagged: bool = False, label: str = "Uninfected",
         box: tuple[int, int, int, int] = (10, 10, 30, 30), crop: bytes | None = None) -> ExportCell:
    return ExportCell(id=cid, photo_id=on.id, slide_id=on.slide_id, slide=on.slide, n=cid, box=box,
                      p=0.9 if label == "Parasitized" else 0.1, model_label=label, answer=answer, flagged=flagged,
                      crop_png=png(cid) if crop is None else crop, model_sha256=SHA,
                      kind="uncertain object" if cid == 2 else "red cell")


def write(dest: Path, photos, cells, complete=frozenset()) -> dict:
    return export_zip.write(dest, photos, cells, SHA, set(complete), WHEN)


def coco_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(export.COCO_NAME))


def crops_in(path: Path) -> dict[str, str]:
    """{file name: class folder} of the zip's crops."""
    with zipfile.ZipFile(path) as zf:
        return {n.split("/")[-1]: n.split("/")[1] for n in zf.namelist() if n.startswith("cell_images/")}


@pytest.fixture
def reviewed():
    """Two slides (one complete), three photos, a cell of every kind."""
    a1, a2, b1 = photo(1, 1, "Ward 3"), photo(2, 1, "Ward 3"), photo(3, 2, "C12 morning")
    cells = [
        cell(1, a1, "parasitized", True, "Parasitized"),
        cell(2, a1, "uninfected", True, "Parasitized"),
        cell(3, a1, "not_cell", True),
        cell(4, a2, None, False),  # the accepted rest of complete slide 1
        cell(5, a2, "uninfected", False),
        cell(6, b1, "skip", True, "Parasitized"),
        cell(7, b1, None, False),  # slide 2 is not complete: left out
        cell(8, b1, "parasitized", True, "Parasitized"),
        cell(9, b1, None, True, "Parasitized"),
    ]
    return [a1, a2, b1], cells


def test_the_pipelines_zip_source_reads_the_labels_and_slides(tmp_path, reviewed):
    photos, cells = reviewed
    dest = tmp_path / "corrections.zip"
    write(dest, photos, cells, {1})
    with zipfile.ZipFile(dest) as zf:
        found, rejects, skipped = zipped.cells(zf, DataParams())
        assert rejects == [] and skipped == 2  # README.txt and the COCO JSON
        assert {c.member.split("/")[-1]: c.label for c in found} == {
            "S1-Ward-3_IMG_1_cell_1.png": "Parasitized", "S1-Ward-3_IMG_1_cell_2.png": "Uninfected",
            "S1-Ward-3_IMG_2_cell_4.png": "Uninfected", "S1-Ward-3_IMG_2_cell_5.png": "Uninfected",
            "S2-C12-morning_IMG_3_cell_8.png": "Parasitized"}
        assert {slide_of(c.member) for c in found} == {"S1-Ward-3", "S2-C12-morning"}  # not merged into C12
        assert zf.read("cell_images/Parasitized/S1-Ward-3_IMG_1_cell_1.png") == cells[0].crop_png
    assert is_quietly_skipped([export.README_NAME]) and is_quietly_skipped([export.COCO_NAME])


def test_each_answer_goes_where_the_rules_say(tmp_path, reviewed):
    photos, cells = reviewed
    counts = write(tmp_path / "c.zip", photos, cells, {1})
    assert counts == {"parasitized": 2, "uninfected": 3, "not_cell": 1, "accepted": 1, "left_out": 3,
                      "slides": 2, "photos": 3}
    annotations = {a["id"]: a for a in coco_of(tmp_path / "c.zip")["annotations"]}
    assert sorted(annotations) == [1, 2, 3, 4, 5, 8]  # skip (6), unreviewed (7) and unanswered in doubt (9) left out
    assert annotations[3]["category_id"] == 3 and annotations[3]["attributes"]["crop"] is None  # not a red cell
    assert annotations[4]["attributes"]["reviewed"] is False and annotations[4]["attributes"]["answer"] is None
    assert annotations[2]["attributes"] | {"crop": None} == {
        "reviewed": True, "answer": "uninfected", "model_p": 0.9, "model_label": "Parasitized", "model_sha256": SHA,
        "cell": 2, "slide": "Ward 3", "crop": None, "kind": "uncertain object"}
    for a in annotations.values():  # every crop has its annotation, and back
        if a["attributes"]["crop"]:
            assert crops_in(tmp_path / "c.zip")[a["attributes"]["crop"].split("/")[-1]]


def test_a_slide_counts_as_complete_only_when_the_backend_says_so(tmp_path, reviewed):
    photos, cells = reviewed
    assert write(tmp_path / "none.zip", photos, cells)["accepted"] == 0
    both = write(tmp_path / "both.zip", photos, cells, {1, 2})
    assert both["accepted"] == 2 and both["left_out"] == 2  # cell 7 now; 9 stays out: it is in doubt
    lone = photo(4)
    parasitized_not_flagged = cell(10, lone, None, False, "Parasitized")  # cannot happen; never made Uninfected
    assert write(tmp_path / "odd.zip", [lone], [parasitized_not_flagged], {1})["left_out"] == 1


def test_coco_is_valid(tmp_path, reviewed):
    photos, cells = reviewed
    edge = cell(10, photos[0], "parasitized", True, box=(190, 90, 20, 20))  # a little past the corner: clipped
    counts = write(tmp_path / "c.zip", photos, [*cells, edge], {1})
    coco = coco_of(tmp_path / "c.zip")
    assert coco["info"]["model_sha256"] == SHA and coco["info"]["exported_at"] == WHEN
    assert coco["info"]["counts"] == counts
    images = {i["id"]: i for i in coco["images"]}
    assert len(images) == len(coco["images"]) == 3 and images[3]["file_name"] == "IMG_0003.jpg"
    categories = {c["id"]: c["name"] for c in coco["categories"]}
    assert categories == {1: "parasitized", 2: "uninfected", 3: "not a red cell"}
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids))
    for a in coco["annotations"]:
        image = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= image["width"] and y + h <= image["height"]
        assert a["category_id"] in categories and a["area"] == w * h and a["iscrowd"] == 0
    assert next(a for a in coco["annotations"] if a["id"] == 10)["bbox"] == [190, 90, 10, 10]


def test_the_readme_says_what_is_inside_and_how_to_train(tmp_path, reviewed):
    photos, cells = reviewed
    write(tmp_path / "c.zip", photos, cells, {1})
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        readme = zf.read(export.README_NAME).decode()
    assert SHA in readme and WHEN in readme
    assert "2 crops: cells a person answered parasitized" in readme
    assert "3 crops: 2 answered uninfected, 1 accepted unreviewed" in readme
    assert "Left out: 3 cells" in readme
    assert "dvc exp run -S data.source=zip -S data.path=" in readme


@pytest.mark.parametrize("names", [
    ["C12 morning/../x", "C12 morning/../y"],
    ["Ünïcødé 1", "Unicode 1", "蓝 slide"],
    ["a b", "a/b", "a_b", "a_IMG_b", "..", "C7"],
])
def test_odd_slide_names_give_safe_distinct_keys(tmp_path, names):
    photos = [photo(i + 1, i + 1, name) for i, name in enumerate(names)]
    cells = [cell(i + 1, p, "parasitized", True) for i, p in enumerate(photos)]
    cells += [cell(len(names) + i + 1, p, "uninfected", True) for i, p in enumerate(photos)]
    write(tmp_path / "c.zip", photos, cells)
    keys = [export.slide_key(p.slide_id, p.slide) for p in photos]
    assert len(set(keys)) == len(keys)
    assert all(k.isascii() and k.replace("-", "").isalnum() for k in keys)
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        members = [n for n in zf.namelist() if n.startswith("cell_images/")]
        found, rejects, _ = zipped.cells(zf, DataParams())
    assert rejects == [] and len(found) == len(members) == 2 * len(names)
    for m in members:
        assert archive.check_member_name(m) and m.count("/") == 2 and ".." not in m
    assert {slide_of(m) for m in members} == set(keys)  # one group per slide: no C<number> merging, no escapes


def test_a_failure_mid_write_leaves_the_earlier_export_whole(tmp_path, reviewed, monkeypatch):
    photos, cells = reviewed
    dest = tmp_path / "corrections.zip"
    write(dest, photos, cells, {1})
    before = dest.read_bytes()
    real, calls = zipfile.ZipFile.writestr, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with pytest.raises(OSError, match="disk full"):
        write(dest, photos, cells, {1, 2})
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrections.zip"]  # no temporary file left


@pytest.mark.parametrize("mutate, message", [
    (lambda ps, cs: (ps, [*cs, cell(99, photo(77), "parasitized")]), "photo 77 is not exported"),
    (lambda ps, cs: ([*ps, ps[0]], cs), "two photos share an id"),
    (lambda ps, cs: (ps, [*cs, cs[0]]), "two cells share an id"),
    (lambda ps, cs: ([*ps, photo(9, 1, "Ward 4")], cs), "a slide has two names"),
    (lambda ps, cs: (ps, [*cs, cell(99, photo(1, 2, "C12 morning"))]), "not on its photo's slide"),
    (lambda ps, cs: (ps, [*cs, cell(99, ps[0], "maybe")]), "unknown answer"),
    (lambda ps, cs: (ps, [*cs, cell(99, ps[0], crop=b"GIF89a")]), "not a PNG"),
    (lambda ps, cs: (ps, [*cs, cell(99, ps[0], box=(500, 500, 10, 10))]), "off its photo"),
])
def test_inconsistent_records_are_refused(tmp_path, reviewed, mutate, message):
    photos, cells = mutate(*reviewed)
    with pytest.raises(ValueError, match=message):
        write(tmp_path / "c.zip", photos, cells)
    assert not (tmp_path / "c.zip").exists()


def test_the_photos_source_reads_the_boxes_with_their_answers_and_slides(tmp_path, reviewed):
    from malaria_cnn.screening import labelled, truth

    photos, cells = reviewed
    write(tmp_path / "c.zip", photos, cells, {1})
    (tmp_path / "boxes.coco.json").write_bytes(zipfile.ZipFile(tmp_path / "c.zip").read(export.COCO_NAME))
    boxes = truth.load(tmp_path / "boxes.coco.json", "data.boxes", not_red=True)
    kinds = {name: sorted(b.kind for b in found) for name, found in boxes.items()}
    assert kinds["IMG_0001.jpg"] == [truth.NOT_RED, "parasitized", "uninfected"]  # a person's answers
    assert set(labelled.LABELS) | set(labelled.LEFT_OUT) >= {k for found in kinds.values() for k in found}
    assert truth.image_slides(tmp_path / "boxes.coco.json") == {"IMG_0001.jpg": "Ward 3", "IMG_0002.jpg": "Ward 3",
                                                                "IMG_0003.jpg": "C12 morning"}
