"""`malaria-cnn serve` killed (SIGKILL) while it screens a slide, then started again on the same workspace:
no photo is lost or failed, the photos done before the kill keep their cells and are not screened again,
and every answer the server acknowledged before the kill is still there."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from malaria_cnn.serve.store import STOPPED_TWICE
from serve.server import CLI, POLL, field_photos, start

PHOTOS = 12
ANSWERS = ("parasitized", "uninfected", "not_cell")


@pytest.fixture(scope="module")
def photos(fields) -> dict[str, bytes]:
    return {f"photo {i:02d}.png": data for i, data in enumerate(field_photos([f.rgb for f in fields.values()], PHOTOS))}


def committed(workspace: Path, where: Path) -> dict:
    """What the killed server's store holds (a copy of it read, so the workspace is left as the kill left it)."""
    where.mkdir()
    for name in ("serve.sqlite3", "serve.sqlite3-wal"):
        if (workspace / name).exists():
            shutil.copy(workspace / name, where / name)
    with sqlite3.connect(where / "serve.sqlite3") as db:
        photos = {i: (state, attempts) for i, state, attempts in db.execute("SELECT id, state, attempts FROM photos")}
        cells = {}
        for photo_id, cell_id in db.execute("SELECT photo_id, id FROM cells ORDER BY photo_id, n"):
            cells.setdefault(photo_id, []).append(cell_id)
        answers = db.execute("SELECT cell_id, answer FROM answers WHERE undone = 0 ORDER BY id").fetchall()
    return {"photos": photos, "cells": cells, "answers": answers}


def test_kill_while_screening_then_restart(tmp_path, ruled_model_dir, photos):
    ws = tmp_path / "ws"
    given: dict[int, str] = {}
    with start(ws, ruled_model_dir) as server:
        slide_id = server.create_slide("killed mid-screening")
        uploaded = server.upload(slide_id, photos)
        assert len(uploaded) == PHOTOS and all(p["state"] != "failed" for p in uploaded), uploaded
        deadline = time.monotonic() + 120
        while not (slide := server.get(f"api/slides/{slide_id}"))["photos_done"]:
            server.check_alive()
            assert time.monotonic() < deadline, server.tail()
            time.sleep(POLL)
        assert slide["photos_done"] < PHOTOS, "every photo was done before the kill: nothing left to resume"
        # a few answers to cells of the photos done, each acknowledged (saved before the reply, says the API)
        for cell in server.get(f"api/slides/{slide_id}/review")["cells"][:len(ANSWERS)]:
            value = ANSWERS[len(given)]
            reply = server.answer(cell["id"], value)
            assert reply["cell"]["answer"] == value
            given[cell["id"]] = value
        assert given, "no cell in doubt among the photos done"
        server.kill()
        first_log = server.log()

    before = committed(ws, tmp_path / "at-kill")
    states = [state for state, _ in before["photos"].values()]
    assert len(states) == PHOTOS
    assert states.count("done") < PHOTOS, f"every photo was done at the kill: {states}"
    assert set(states) <= {"queued", "screening", "done"}, states
    assert dict(before["answers"]) == given  # acknowledged, so committed
    print(f"at the kill: {states.count('done')} photos done, {states.count('screening')} being screened, "
          f"{states.count('queued')} queued; {len(given)} answers given")

    with start(ws, ruled_model_dir) as server:
        slide = server.wait_screened(slide_id)
        review = server.get(f"api/slides/{slide_id}/review")
        cells_now = {p["id"]: [c["id"] for c in server.get(f"api/photos/{p['id']}")["cells"]] for p in slide["photos"]}
        # the restarted server takes answers as before
        fresh = next(c for c in review["cells"] if c["answer"] is None)
        assert server.answer(fresh["id"], "uninfected")["cell"]["answer"] == "uninfected"
        second_log = server.log()
        errors = server.internal_errors()

    # no photo lost or failed: every one uploaded is done
    assert sorted(p["id"] for p in slide["photos"]) == sorted(p["id"] for p in uploaded)
    assert [p["state"] for p in slide["photos"]] == ["done"] * PHOTOS, [(p["state"], p["error"]) for p in slide["photos"]]
    assert slide["photos_done"] == PHOTOS and slide["photos_queued"] == 0
    assert all(n for n in cells_now.values())

    # every answer given before the kill is there, on the same cells, in the review
    shown = {c["id"]: c["answer"] for c in review["cells"] if c["answer"] is not None}
    assert shown == given
    assert review["summary"]["review"]["answered"] == len(given)

    # photos done before the kill were not screened again (same cells, one attempt); the others once more at most
    with sqlite3.connect(ws / "serve.sqlite3") as db:
        attempts = dict(db.execute("SELECT id, attempts FROM photos").fetchall())
        stored = db.execute("SELECT cell_id, answer FROM answers WHERE undone = 0 ORDER BY id").fetchall()
    for photo_id, (state, tried) in before["photos"].items():
        if state == "done":
            assert cells_now[photo_id] == before["cells"][photo_id]
            assert attempts[photo_id] == tried == 1
        elif state == "screening":
            assert attempts[photo_id] == tried + 1  # claimed again after the restart, once
        else:
            assert attempts[photo_id] == tried + 1 == 1  # screened once, by the restarted server
    assert stored == [*given.items(), (fresh["id"], "uninfected")]

    for log in (first_log, second_log):
        assert "Traceback" not in log, log[-3000:]
    assert errors == [], [e.read_text()[-2000:] for e in errors]


KILLER = Path(__file__).parent / "killer"  # its sitecustomize.py SIGKILLs the server on one photo


def test_a_photo_that_kills_the_server_every_time_fails_after_two_tries_and_the_rest_completes(
        tmp_path, ruled_model_dir, photos, monkeypatch):
    ws, sent = tmp_path / "ws", dict(list(photos.items())[:4])
    with start(ws, ruled_model_dir) as server:
        slide_id = server.create_slide("a photo that kills")
        server.kill()  # the next start screens what this one is sent: started with the killer armed
    killer_file = "2.png"  # the second photo sent
    monkeypatch.setenv("PYTHONPATH", f"{KILLER}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("MALARIA_CNN_TEST_KILLER", killer_file)
    exits = []
    for attempt in range(2):
        try:
            server = start(ws, ruled_model_dir)
        except AssertionError:  # killed before it answered: the queue was resumed at once
            exits.append("killed before answering")
            continue
        if attempt == 0:
            uploaded = server.upload(slide_id, sent)
            assert {p["state"] for p in uploaded} <= {"queued", "screening"}
        exits.append(server.proc.wait(120))
        server.kill()
    assert all(e in (-signal.SIGKILL, "killed before answering") for e in exits), exits
    monkeypatch.delenv("MALARIA_CNN_TEST_KILLER")
    with start(ws, ruled_model_dir) as server:
        slide = server.wait_screened(slide_id)
        errors = server.internal_errors()
    states = {p["id"]: (p["state"], p["error"]) for p in slide["photos"]}
    assert states.pop(2) == ("failed", STOPPED_TWICE)
    assert set(states.values()) == {("done", "")}, states
    assert errors == []


def test_a_workspace_of_another_model_is_refused_in_one_line(tmp_path, ruled_model_dir):
    ws = tmp_path / "ws"
    with start(ws, ruled_model_dir):
        pass
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.keras").write_bytes((ruled_model_dir / "model.keras").read_bytes() + b"another model")
    run = subprocess.run([str(CLI), "serve", "--workspace", str(ws), "--model", str(other / "model.keras")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "was screened by the model" in lines[0] and str(other / "model.keras") in lines[0]
    assert "--workspace" in lines[0] and "Traceback" not in run.stderr


def test_a_kill_during_an_upload_loses_no_acknowledged_photo_and_queues_no_half_one(tmp_path, ruled_model_dir, photos):
    import threading

    import cv2
    import numpy as np

    from malaria_cnn.serve.uploads import INTERRUPTED

    ws, files = tmp_path / "ws", list(photos.items())
    with start(ws, ruled_model_dir) as server:
        slide_id = server.create_slide("killed mid-upload")
        acknowledged = server.upload(slide_id, dict(files[:2]))
        in_flight = threading.Thread(target=lambda: _quietly(server.upload, slide_id, dict(files[2:])))
        in_flight.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # killed as soon as the second upload's first photo is recorded
            with sqlite3.connect(ws / "serve.sqlite3") as db:
                if db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] > len(acknowledged):
                    break
            time.sleep(0.002)
        server.kill()
        in_flight.join(60)
    with sqlite3.connect(ws / "serve.sqlite3") as db:
        rows = db.execute("SELECT id, state, error, file FROM photos ORDER BY id").fetchall()
    assert {p["id"] for p in acknowledged} <= {r[0] for r in rows}
    for photo_id, state, error, file in rows:  # each photo whole and queued (or further on), or failed saying so
        if state == "failed":
            assert error == INTERRUPTED, (photo_id, error)
        else:
            data = np.fromfile(ws / "uploads" / file, np.uint8)
            assert cv2.imdecode(data, cv2.IMREAD_COLOR) is not None, (photo_id, state)
    print(f"after the kill: {len(rows)} photos, {sum(r[1] == 'failed' for r in rows)} failed as interrupted")
    with start(ws, ruled_model_dir) as server:
        slide = server.wait_screened(slide_id)
    assert all(p["state"] == "done" or p["error"] == INTERRUPTED for p in slide["photos"])
    assert {p["id"] for p in acknowledged} <= {p["id"] for p in slide["photos"] if p["state"] == "done"}


def _quietly(call, *args):
    try:
        call(*args)
    except Exception:  # the server was killed under it
        pass
