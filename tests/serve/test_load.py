"""`malaria-cnn serve` under load, as a user runs it (a subprocess on loopback): 5 clients at once, each its
own slide and 4 uploads in flight together (20 photos of 1280x960), each answering cells of its slide's
review while the photos are screened. Every upload is accepted, every photo screened once and done,
every answer stored as given, and nothing fails on the server's side."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serve.server import POLL, answer, create_slide, field_photos, ok_json, start, upload

CLIENTS, UPLOADS = 5, 4  # 20 uploads in flight at once
ANSWERS = ("parasitized", "uninfected", "not_cell", "skip")
PER_CLIENT = 12  # answers each client gives at most (each reply carries the slide's whole summary)
PER_ROUND = 2  # answers given per look at the review, so they spread over the screening


@pytest.fixture(scope="module")
def photos(fields) -> list[bytes]:
    """20 distinct 1280x960 PNG photos: the three 640x480 synthetic fields tiled 2x2 in turn, some flipped."""
    return field_photos([f.rgb for f in fields.values()], CLIENTS * UPLOADS)


def test_concurrent_uploads_and_answers(tmp_path, ruled_model_dir, photos):
    statuses: list[tuple[str, str, int]] = []  # every reply the clients got: method, path, status
    lock = threading.Lock()

    def record(response: httpx.Response) -> None:
        with lock:
            statuses.append((response.request.method, response.request.url.path, response.status_code))

    barrier = threading.Barrier(CLIENTS * UPLOADS, timeout=60)

    def send(c: httpx.Client, slide_id: int, i: int) -> httpx.Response:
        barrier.wait()  # all 20 uploads start together
        return upload(c, slide_id, {f"photo {i:02d}.png": photos[i]})

    def user(k: int) -> dict:
        """One person: a slide, 4 uploads at once, and answers to its review's cells as they appear."""
        with server.new_client(event_hooks={"response": [record]}) as c:
            slide_id = ok_json(create_slide(c, f"load {k}"), 201)["id"]
            given: dict[int, str] = {}
            tally: Counter = Counter()
            answered_while_screening = 0
            with ThreadPoolExecutor(UPLOADS) as pool:
                sent = [pool.submit(send, c, slide_id, k * UPLOADS + j) for j in range(UPLOADS)]
                while True:
                    review = ok_json(c.get(f"/api/slides/{slide_id}/review"))
                    screening = not all(f.done() for f in sent) or review["summary"]["photos_queued"] > 0
                    fresh = [cell for cell in review["cells"] if cell["id"] not in given]
                    for cell in review["cells"]:
                        assert cell["flagged"] and cell["answer"] == given.get(cell["id"]), cell
                    room = PER_CLIENT - len(given)
                    for cell in fresh[:min(PER_ROUND, room)]:
                        value = ANSWERS[len(given) % len(ANSWERS)]
                        reply = ok_json(answer(c, cell["id"], value))
                        given[cell["id"]] = value
                        tally[value] += 1
                        answered_while_screening += screening
                        # the reply: the cell with its answer, and its slide's summary counting every answer so far
                        assert (reply["cell"]["id"], reply["cell"]["answer"]) == (cell["id"], value)
                        assert reply["cell"]["flagged"]
                        counts = reply["summary"]["review"]
                        assert reply["summary"]["id"] == slide_id
                        assert {a: counts[a] for a in ANSWERS[:3]} == {a: tally[a] for a in ANSWERS[:3]}
                        assert counts["skipped"] == tally["skip"]
                        assert counts["answered"] == len(given) - tally["skip"]
                    if not screening and (not fresh or len(given) >= PER_CLIENT):
                        break
                    if not fresh:
                        time.sleep(POLL)  # nothing new to answer yet: look again
                replies = [f.result() for f in sent]
            return {"slide_id": slide_id, "uploads": replies, "given": given,
                    "during": answered_while_screening,
                    "slide": ok_json(c.get(f"/api/slides/{slide_id}")),
                    "review": ok_json(c.get(f"/api/slides/{slide_id}/review"))}

    with start(tmp_path / "ws", ruled_model_dir) as server:
        with ThreadPoolExecutor(CLIENTS) as pool:
            users = list(pool.map(user, range(CLIENTS)))
        server.check_alive()
        log = server.log()
        errors = server.internal_errors()
        code = server.stop()
    closed = not (tmp_path / "ws" / "serve.sqlite3-wal").exists()  # SQLite removes it as its last connection closes

    # every request answered without a server error; uploads 200, slides 201, everything else 200
    assert len(statuses) > CLIENTS * (UPLOADS + 2)
    assert [s for s in statuses if s[2] >= 500] == []
    assert {s[2] for s in statuses} <= {200, 201}, Counter(statuses)
    uploaded = {}
    for u in users:
        for r in u["uploads"]:
            assert r.status_code == 200, r.text
            [photo] = r.json()["photos"]
            assert photo["slide_id"] == u["slide_id"] and photo["state"] in ("queued", "screening", "done"), photo
            uploaded[photo["id"]] = u["slide_id"]
    assert len(uploaded) == CLIENTS * UPLOADS

    # every photo done (none failed or lost), with cells found, each on the slide it was sent to
    for u in users:
        slide = u["slide"]
        assert slide["photos_total"] == UPLOADS and slide["photos_done"] == UPLOADS, slide
        assert sorted(p["id"] for p in slide["photos"]) == sorted(i for i, s in uploaded.items() if s == u["slide_id"])
        for p in slide["photos"]:
            assert p["state"] == "done" and not p["error"] and (p["width"], p["height"]) == (1280, 960), p
            assert p["cells_total"] > 100, p  # 4 fields of about 36 cells each
        assert u["given"], f"slide {u['slide_id']} had no cell in doubt to answer"
        # every answer given is what the review shows for its cell
        shown = {c["id"]: c["answer"] for c in u["review"]["cells"]}
        assert {i: shown.get(i) for i in u["given"]} == u["given"]
        assert sum(a is not None for a in shown.values()) == len(u["given"])

    # the workspace: each photo screened exactly once, one stored answer per answer given
    with sqlite3.connect(tmp_path / "ws" / "serve.sqlite3") as db:
        attempts = dict(db.execute("SELECT id, attempts FROM photos").fetchall())
        stored = db.execute("SELECT cell_id, slide_id, answer, undone FROM answers ORDER BY id").fetchall()
    assert attempts == dict.fromkeys(uploaded, 1)
    given = {(cell, u["slide_id"], value, 0) for u in users for cell, value in u["given"].items()}
    assert len(stored) == len(given) == sum(len(u["given"]) for u in users)
    assert set(stored) == given

    # the server: no traceback in its output nor in an error log, and a clean stop
    assert "Traceback" not in log, log[-3000:]
    assert errors == [], [e.read_text()[-2000:] for e in errors]
    assert code in (0, -signal.SIGTERM), log[-3000:]  # uvicorn raises the signal again once it has shut down
    assert closed, "the store was not closed on SIGTERM (its -wal file is left)"
    print(f"answers given while photos were still being screened: {[u['during'] for u in users]}")
