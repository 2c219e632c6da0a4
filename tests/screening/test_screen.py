import csv
import json
import struct
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from malaria_cnn.screening import report, screen, truth
from malaria_cnn.screening.run import run
from malaria_cnn.screening.synthetic_field import coco

from conftest import run_cli as _run
from conftest import slide_rule


def redness(x: np.ndarray) -> np.ndarray:
    """A stand-in model: P(Parasitized) = mean red / 255 over the crop."""
    return x[..., 0].mean(axis=(1, 2)) / 255


def _bgr(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _bomb() -> bytes:
    """A PNG whose header claims 20000 x 20000 pixels: refused before any pixel is decoded."""
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 4 + b"\0" * 64


@pytest.fixture(scope="module")
def photos(tmp_path_factory, fields):
    """A folder of the synthetic fields as PNG, JPEG and TIFF, a zip, and bad photos."""
    where = tmp_path_factory.mktemp("photos")
    fa, fb, fc = fields.values()
    (where / "in").mkdir()
    cv2.imwrite(str(where / "in" / "P1_a.png"), _bgr(fa.rgb))
    cv2.imwrite(str(where / "in" / "P1_b.jpg"), _bgr(fb.rgb), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(where / "in" / "P2_c.tif"), _bgr(fc.rgb))
    jpeg = cv2.imencode(".jpg", _bgr(fa.rgb))[1].tobytes()
    (where / "in" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (where / "in" / "notes.jpg").write_text("not a photo")
    (where / "in" / "bomb.png").write_bytes(_bomb())
    (where / "in" / ".hidden.png").write_bytes(jpeg)
    with zipfile.ZipFile(where / "more.zip", "w") as zf:
        zf.writestr("z/P3_a.png", cv2.imencode(".png", _bgr(fa.rgb))[1].tobytes())
        zf.writestr("../evil.png", jpeg)
    names = {"P1_a.png": fa, "P1_b.jpg": fb, "P2_c.tif": fc, "P3_a.png": fa}
    (where / "truth.json").write_text(json.dumps(coco(names)))
    return where


@pytest.fixture(scope="module")
def screened(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "screened"
    code = run(redness, [photos / "in", photos / "more.zip"], out, 32, threshold=0.75, slide_pattern=r"^(P\d+)_",
               boxes=truth.load(photos / "truth.json"), rule=slide_rule())
    return out, code


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_every_input_file_has_its_row_with_the_reason_it_failed(screened, photos):
    out, code = screened
    rows = _csv(out / "images.csv")
    assert rows[0] == ["image", "slide", "cells", "parasitized", "called_share", "counted", "uncertain", "flagged", "referred",
                       "error"]
    by_name = {Path(r[0].split(":")[-1]).name: r for r in rows[1:]}
    assert sorted(by_name) == sorted(["P1_a.png", "P1_b.jpg", "P2_c.tif", "truncated.jpg", "notes.jpg", "bomb.png",
                                      "P3_a.png", "evil.png"])  # the hidden file is skipped, as predict does
    assert by_name["truncated.jpg"][9] == "truncated file"
    assert by_name["notes.jpg"][9] == "not a readable image"
    assert by_name["bomb.png"][9].startswith("too large: 20000x20000 pixels")
    assert by_name["evil.png"][9].startswith("unsafe path")
    cells = _csv(out / "cells.csv")[1:]
    for name in ("P1_a.png", "P1_b.jpg", "P2_c.tif", "P3_a.png"):
        r = by_name[name]
        assert r[8] == r[9] == "" and int(r[2]) >= 30 and float(r[4]) == pytest.approx(int(r[3]) / int(r[2]), abs=1e-6)
        p = np.array([float(c[6]) for c in cells if c[0] == r[0]])  # counted, uncertain, flagged as the rule says
        assert (int(r[5]), int(r[6]), int(r[7])) == (np.sum(p >= 0.5), np.sum((p >= 0.3) & (p < 0.7)), np.sum(p >= 0.6))
    assert by_name["P1_a.png"][1] == "P1" and code == 1


def test_cells_csv_has_a_row_per_found_cell_in_photo_pixels(screened):
    out, _ = screened
    rows = _csv(out / "cells.csv")
    assert rows[0] == ["image", "cell", "x", "y", "w", "h", "p_parasitized", "label", "kind"]
    images = _csv(out / "images.csv")[1:]
    found = {r[0]: int(r[2]) for r in images if not r[9]}
    assert sum(found.values()) == len(rows) - 1
    for image, cell, x, y, w, h, p, label, kind in rows[1:]:
        assert kind in ("red cell", "uncertain object")
        assert 0 <= int(x) and int(x) + int(w) <= 640 and 0 <= int(y) and int(y) + int(h) <= 480
        assert label == ("Parasitized" if float(p) >= 0.75 else "Uninfected")
    first = [r for r in rows[1:] if r[0].endswith("P1_a.png")]
    assert [int(r[1]) for r in first] == list(range(1, len(first) + 1))


def test_slides_pictures_and_detection(screened, capsys):
    out, _ = screened
    slides = _csv(out / "slides.csv")
    assert slides[0] == ["slide", "images", "cells", "parasitized", "counted", "counted_share", "parasitemia",
                         "parasitemia_ci_lower", "parasitemia_ci_upper", "flagged", "review_limit", "answer", "reason",
                         "images_referred"]
    assert [s[:2] for s in slides[1:]] == [["P1", "2"], ["P2", "1"], ["P3", "1"]]
    images = {r[0].split(":")[-1].rsplit("/", 1)[-1]: r for r in _csv(out / "images.csv")[1:]}
    assert slides[1][2] == str(int(images["P1_a.png"][2]) + int(images["P1_b.jpg"][2]))  # P1's photos pooled
    assert slides[1][4] == str(int(images["P1_a.png"][5]) + int(images["P1_b.jpg"][5]))
    for s in slides[1:]:
        assert float(s[7]) <= float(s[6]) <= float(s[8]) and s[11] in ("infected", "not infected", "refer") and s[12]
    assert slides[1][9] == str(int(images["P1_a.png"][7]) + int(images["P1_b.jpg"][7]))  # flagged for review
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["P1_a.jpg", "P1_b.jpg", "P2_c.jpg", "P3_a.jpg"]
    assert cv2.imread(str(out / "annotated" / "P2_c.jpg")).shape == (480, 640, 3)
    assert cv2.imread(str(out / "parasitized.png")) is not None
    detection = json.loads((out / "detection.json").read_text())
    assert detection["photos"] == 4 and detection["detection"]["f1"] >= 0.9
    by_type = detection["found_by_type"]["by_type"]  # the synthetic photos' boxes: "ring" and "red blood cell"
    assert set(by_type) == {"ring", "plain"}
    assert sum(t["labelled"] for t in by_type.values()) == detection["labelled"]
    assert by_type["ring"]["labelled"] == detection["parasitized_labelled"] and by_type["ring"]["share"] >= 0.9
    pooled = detection["pooled_parasitemia"]  # the labelled photos' true share against the corrected one
    assert pooled["true"] == pytest.approx(detection["parasitized_labelled"] / detection["labelled"], abs=1e-6)
    assert pooled["lower"] <= pooled["corrected"] <= pooled["upper"]
    assert pooled["covered"] == (pooled["lower"] <= pooled["true"] <= pooled["upper"])
    assert not list(out.rglob(".*tmp*"))  # every file written in one step
    # the review simulated, the boxes answering: per slide, its flagged cells and the parasites among them
    review = {r["slide"]: r for r in csv.DictReader(open(out / "review.csv"))}
    assert sorted(review) == ["P1", "P2", "P3"]
    assert int(review["P1"]["images"]) == 2 and review["P1"]["flagged"] == slides[1][9]
    labelled = sum(int(r["parasites_labelled"]) for r in review.values())
    assert labelled == detection["parasitized_labelled"] > 0
    for r in review.values():
        assert 0 <= int(r["parasites_flagged"]) <= int(r["parasites_labelled"])
        assert (r["answer_after_review"] == "infected") == (int(r["parasites_flagged"]) > 0)
        assert r["infected"] == str(int(int(r["parasites_labelled"]) > 0))
    found = sum(int(r["parasites_flagged"]) for r in review.values())
    assert detection["review"]["reviewed_recall"] == round(found / labelled, 6)


def test_annotated_outlines_are_coloured_by_call(fields):
    f = next(iter(fields.values()))
    item = screen.Item("a.png", cv2.imencode(".png", _bgr(f.rgb))[1].tobytes())
    photo = screen.prepare(item, 32)
    photo.labels = ["Parasitized"] * len(photo.boxes)
    drawn = report.annotated(photo)
    changed = (drawn != f.rgb).any(axis=2)
    assert changed.any() and (drawn[changed] == (230, 30, 30)).all(axis=1).mean() > 0.5
    x, y, w, h = photo.boxes[0]
    assert changed[y:y + h, x:x + w].any()


def test_the_command_screens_with_a_trained_model_and_prints_the_detection_line(tmp_path, photos, model_dir):
    result = _run("screen", photos / "in" / "P1_a.png", photos / "in" / "P2_c.tif", "--model",
                  model_dir / "model.keras", "--truth", photos / "truth.json", "--out", "s", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("screen: 2 photos read, ") and "at threshold 0.500 -> s" in lines[0]
    assert lines[1].startswith("detection: ") and "in 2 photos" in lines[1] and lines[1].endswith("s/detection.json")
    kinds = [row[8] for row in _csv(tmp_path / "s" / "cells.csv")[1:]]
    assert len(kinds) > 60
    objects = kinds.count("uncertain object")  # the line tells them from red cells
    found = (f"{len(kinds)} cells found ({len(kinds) - objects} red cells, {objects} uncertain object"
             if objects else f"{len(kinds)} red cells found, ")
    assert found in lines[0], (found, lines[0])


@pytest.mark.parametrize("args, message", [
    (["screen", "nowhere"], "error: no such file or folder: nowhere"),
    (["screen", ".", "--cell-diameter", "0"], "error: --cell-diameter must be between 4 and 5000"),
    (["screen", ".", "--slide-pattern", "("], "error: --slide-pattern is not a regular expression"),
    (["screen", ".", "--truth", "none.json"], "error: --truth: none.json not found"),
])
def test_usage_errors_are_one_line_and_exit_code_2(tmp_path, args, message):
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_a_photo_of_a_far_darker_stain_is_referred_and_counted_apart(tmp_path, fields):
    from malaria_cnn.data import stain

    f = next(iter(fields.values()))
    photo = screen.prepare(screen.Item("P1_a.png", cv2.imencode(".png", _bgr(f.rgb))[1].tobytes()), 32)
    span = stain.StainRange.of_slides(photo.density, np.array(["P1"] * len(photo.density)))
    dark = np.clip(np.rint(255 * (np.maximum(f.rgb, 1) / 255.0) ** 6), 1, 255).astype(np.uint8)  # OD x6
    cv2.imwrite(str(tmp_path / "P1_a.png"), _bgr(f.rgb))
    cv2.imwrite(str(tmp_path / "P1_dark.png"), _bgr(dark))
    cv2.imwrite(str(tmp_path / "P2_dark.png"), _bgr(dark))
    code = run(redness, [tmp_path / n for n in ("P1_a.png", "P1_dark.png", "P2_dark.png")], tmp_path / "out", 32,
               threshold=0.5, slide_pattern=r"^(P\d+)_", stain_range=span)
    assert code == 0
    images = {Path(r[0]).name: r for r in _csv(tmp_path / "out" / "images.csv")[1:]}
    assert images["P1_a.png"][8] == "" and images["P1_a.png"][4] != ""
    for name in ("P1_dark.png", "P2_dark.png"):
        assert images[name][8].startswith("stain unlike the training data: ") and images[name][4] == ""
    p1, p2 = _csv(tmp_path / "out" / "slides.csv")[1:]
    assert p1[1:3] == ["1", images["P1_a.png"][2]] and p1[-1] == "1"  # the dark photo counted apart
    assert p1[11] == "" and "not corrected" in p1[12]  # no slide rule given: counts, no answer
    assert p2[1:5] == ["0", "0", "0", "0"] and p2[5:11] == [""] * 6 and p2[-1] == "1"  # every photo referred: no number
    assert p2[11:13] == ["refer", images["P2_dark.png"][8]]
    banner = cv2.imread(str(tmp_path / "out" / "annotated" / "P1_dark.jpg"))[:20]
    assert (banner > 240).all(axis=2).mean() > 0.5  # the annotated copy says so across its top


def test_a_photo_that_fails_in_any_step_gets_its_row_and_the_run_goes_on(tmp_path, fields, monkeypatch, capsys):
    fa, fb, _ = fields.values()
    cv2.imwrite(str(tmp_path / "P1_a.png"), _bgr(fa.rgb))
    cv2.imwrite(str(tmp_path / "P1_b.png"), _bgr(fb.rgb))
    cv2.imwrite(str(tmp_path / "P1_odd.png"), _bgr(fa.rgb[:333, :444]))  # the one segmentation fails on
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "bomb.png").write_bytes(_bomb())
    segment = screen.segment

    def failing(rgb, *args):
        if rgb.shape[:2] == (333, 444):
            raise ValueError("no threshold found\nsecond line")
        return segment(rgb, *args)

    monkeypatch.setattr(screen, "segment", failing)
    out = tmp_path / "out"
    assert run(redness, [tmp_path], out, 32, threshold=0.75, slide_pattern=r"^(P\d+)_") == 1
    images = {Path(r[0]).name: r for r in _csv(out / "images.csv")[1:]}
    assert sorted(images) == ["P1_a.png", "P1_b.png", "P1_odd.png", "bomb.png", "notes.jpg"]
    assert images["P1_odd.png"][9] == "internal error: ValueError: no threshold found"
    assert images["notes.jpg"][9] == "not a readable image" and images["bomb.png"][9].startswith("too large")
    assert images["P1_a.png"][9] == "" and int(images["P1_a.png"][2]) >= 30
    assert _csv(out / "slides.csv")[1][:2] == ["P1", "2"] and (out / "parasitized.png").is_file()
    assert not list(out.glob("*.partial")) and "3 photos failed" in capsys.readouterr().out


def test_an_interrupted_run_leaves_the_rows_of_every_finished_photo(tmp_path, fields, capsys):
    for name, f in zip(("P1_a.png", "P1_b.png", "P1_c.png"), fields.values()):
        cv2.imwrite(str(tmp_path / name), _bgr(f.rgb))
    calls = []

    def interrupted(x):
        calls.append(len(x))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return redness(x)

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, [tmp_path], out, 32, threshold=0.75)
    images = _csv(out / "images.csv.partial")
    assert [Path(r[0]).name for r in images[1:]] == ["P1_a.png"] and images[1][2] == str(calls[0])
    assert len(_csv(out / "cells.csv.partial")) == 1 + calls[0]
    assert not (out / "images.csv").exists() and not (out / "cells.csv").exists()
    assert capsys.readouterr().err.strip() == (f"stopped: the rows written so far are in {out / 'cells.csv'}.partial "
                                               f"and {out / 'images.csv'}.partial")


def test_labels_follow_each_photo_by_its_path_and_failed_labelled_photos_are_listed(tmp_path, fields):
    fa, fb, fc = fields.values()
    for folder in ("a", "b", "c"):
        (tmp_path / "in" / folder).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "in" / "a" / "DSC_0001.png"), _bgr(fa.rgb))  # one name in two folders
    cv2.imwrite(str(tmp_path / "in" / "b" / "DSC_0001.png"), _bgr(fb.rgb))
    cv2.imwrite(str(tmp_path / "in" / "P4:x.png"), _bgr(fc.rgb))  # a ":" in a file name
    png = cv2.imencode(".png", _bgr(fc.rgb))[1].tobytes()
    (tmp_path / "in" / "c" / "DSC_0002.png").write_bytes(png[: len(png) // 2])  # labelled, but truncated
    labels = coco({"a/DSC_0001.png": fa, "b/DSC_0001.png": fb, "P4:x.png": fc, "c/DSC_0002.png": fc})
    (tmp_path / "truth.json").write_text(json.dumps(labels))
    out = tmp_path / "out"
    run(redness, [tmp_path / "in"], out, 32, threshold=0.75, boxes=truth.load(tmp_path / "truth.json"))
    d = json.loads((out / "detection.json").read_text())
    assert d["photos"] == 3 and d["detection"]["f1"] >= 0.9 and d["detection_iou50"]["f1"] is not None
    assert d["labelled"] == len(fa.cells) + len(fb.cells) + len(fc.cells)
    assert [Path(p).name for p in d["per_photo"]] == ["P4:x.png", "DSC_0001.png", "DSC_0001.png"]
    assert [Path(p).name for p in d["photos_failed"]] == ["DSC_0002.png"]
    assert d["labelled_in_failed_photos"] == len(fc.cells) and d["photos_without_boxes"] == []
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["DSC_0001-2.jpg", "DSC_0001.jpg", "P4:x.jpg"]


def test_the_path_of_a_photo_under_its_input(tmp_path):
    archive = tmp_path / "more.zip"
    archive.write_bytes(b"")
    assert screen.relative_path(f"{archive}:z/a:b.png") == "z/a:b.png"  # split only after an actual archive
    assert screen.relative_path("in/P1:a.png") == "P1:a.png"
    assert screen.relative_path(f"{archive}:z/a:b.png", archive) == "z/a:b.png"
    assert screen.relative_path(str(tmp_path / "d" / "e.png"), tmp_path) == "d/e.png"
    assert screen.relative_path("in/P1:a.png", "in/P1:a.png") == "P1:a.png"


def test_read_ahead_keeps_at_most_a_photo_per_core_and_the_one_scored_alive(tmp_path, monkeypatch):
    """A photo is alive from the start of its preparation until it is freed; the caller drops each one."""
    import threading
    import weakref
    from concurrent.futures import Future, ThreadPoolExecutor

    for i in range(8):
        (tmp_path / f"p{i}.png").write_bytes(b"x")
    lock, alive, peak, side_by_side = threading.Lock(), [0], [0], threading.Barrier(2, timeout=60)

    def freed():
        with lock:
            alive[0] -= 1

    def fake_prepare(item, *args):
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        if screen.ThreadPoolExecutor is ThreadPoolExecutor and Path(item.name).name in ("p0.png", "p1.png"):
            side_by_side.wait()  # the first two photos are prepared at once, or this fails
        photo = screen.Photo(item.name, "s", inputs=np.zeros((1, 2, 2, 3), np.uint8))
        weakref.finalize(photo, freed)
        return photo

    class Inline:
        """An executor that runs each task as it is submitted: every photo submitted is alive."""

        def __init__(self, max_workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            done = Future()
            done.set_result(fn(*args))
            return done

    def screened() -> int:
        n = 0
        for photo in screen.screen(lambda x: np.zeros(len(x)), [tmp_path], 2, 0.5, progress=False):
            n += 1
            del photo
        return n

    monkeypatch.setattr(screen, "prepare", fake_prepare)
    monkeypatch.setattr(screen, "available_cores", lambda: 2)
    assert screened() == 8 and peak[0] <= 3 and alive[0] == 0  # a photo on each of 2 threads, one scored
    monkeypatch.setattr(screen, "ThreadPoolExecutor", Inline)
    peak[0] = 0
    assert screened() == 8 and peak[0] == 3 and alive[0] == 0


def test_read_ahead_shrinks_to_the_memory_free_and_screening_still_finishes(photos, tmp_path, monkeypatch):
    """A 16-core machine with 24 GB free holds 6 photos of 200 MP, not 17; with no room, one at a time."""
    monkeypatch.setattr(screen, "available_memory", lambda: 24 * 10**9)
    assert screen.read_ahead(16, 200_000_000) == 6 and screen.read_ahead(2, 12_000_000) == 3
    monkeypatch.setattr(screen, "available_memory", lambda: None)
    assert screen.read_ahead(16, 200_000_000) == 17
    monkeypatch.setattr(screen, "available_memory", lambda: 10**6)
    assert screen.read_ahead(16, 200_000_000) == 1
    code = run(redness, [photos / "in"], tmp_path / "out", 32, threshold=0.75)
    rows = _csv(tmp_path / "out" / "images.csv")[1:]
    assert code == 1 and len(rows) == 6 and sum(not r[-1] for r in rows) == 3  # every file, one photo in flight
