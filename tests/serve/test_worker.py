"""The screening worker in the running app (in process): a photo that fails at any step fails alone, with its
reason, and the rest are screened; the status says when the worker fails or stops."""

from __future__ import annotations

import time

import pytest

from serve.test_app import client, png, settings, wait_done


def test_a_photo_that_fails_at_any_step_fails_alone_and_the_worker_goes_on(tmp_path, scoring, fields, monkeypatch):
    from malaria_cnn.serve import worker

    real, calls = worker.cell_records, []

    def flaky(photo):
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("no room for the cells' records")
        return real(photo)

    monkeypatch.setattr(worker, "cell_records", flaky)
    photos = [png(f.rgb) for f in fields.values()][:3]
    with client(settings(tmp_path, scoring)) as c:
        sid = c.post("/api/slides", json={"name": "one fails"}).json()["id"]
        c.post(f"/api/slides/{sid}/photos", files=[("files", (f"{i}.png", p, "image/png")) for i, p in enumerate(photos)])
        slide = wait_done(c, sid)
        states = sorted((p["state"], p["error"]) for p in c.get(f"/api/slides/{sid}").json()["photos"])
        assert states[:2] == [("done", ""), ("done", "")]
        assert states[2] == ("failed", "internal error: MemoryError: no room for the cells' records")
        assert slide["photos_done"] == 2 and c.get("/api/status").json()["worker"] == {"running": True, "error": ""}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread ended on purpose
def test_the_status_says_when_the_worker_is_not_running(tmp_path, scoring, monkeypatch):
    with client(settings(tmp_path, scoring)) as c:
        w = c.app.state.worker
        monkeypatch.setattr(w.store, "claim", lambda n: (_ for _ in ()).throw(RuntimeError("disk gone")))
        w.wake.set()
        deadline = time.monotonic() + 10
        while c.get("/api/status").json()["worker"]["error"] == "" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.get("/api/status").json()["worker"] == {"running": True, "error": "internal error: RuntimeError: disk gone"}
        monkeypatch.setattr(w.store, "claim", lambda n: (_ for _ in ()).throw(SystemExit()))  # the thread ends
        w.wake.set()
        w.thread.join(10)
        assert c.get("/api/status").json()["worker"]["running"] is False


def test_a_cells_model_input_made_on_request_is_the_one_it_was_scored_on_and_its_kind_is_kept(tmp_path, scoring,
                                                                                              fields):
    import cv2
    import numpy as np

    from malaria_cnn.screening.screen import screen
    from serve.test_app import screened_slide

    data = png(next(iter(fields.values())).rgb)
    (tmp_path / "a.png").write_bytes(data)
    scored = next(iter(screen(scoring.score, [tmp_path / "a.png"], scoring.size, scoring.threshold, None, "",
                              scoring.stain_mode, scoring.stain_range, progress=False)))
    with client(settings(tmp_path / "served", scoring)) as c:
        sid = screened_slide(c, "inputs", data)
        photo_id = c.get(f"/api/slides/{sid}").json()["photos"][0]["id"]
        cells = c.get(f"/api/photos/{photo_id}").json()["cells"]
        assert len(cells) == len(scored.inputs) > 0
        assert [c["kind"] for c in cells] == scored.kinds  # red cell or uncertain object, as screen's cells.csv
        for cell in cells[:8]:
            got = cv2.imdecode(np.frombuffer(c.get(f"/api/cells/{cell['id']}/input").content, np.uint8), cv2.IMREAD_COLOR)
            assert np.array_equal(cv2.cvtColor(got, cv2.COLOR_BGR2RGB), scored.inputs[cell["n"] - 1])
            assert cell["p"] == float(scored.p[cell["n"] - 1])


def test_a_photos_display_copy_is_made_when_a_page_first_asks_for_it(tmp_path, scoring, fields):
    import cv2
    import numpy as np

    from serve.test_app import screened_slide

    rgb = next(iter(fields.values())).rgb
    s = settings(tmp_path, scoring)
    with client(s) as c:
        sid = screened_slide(c, "shown later", png(rgb))
        photo = c.get(f"/api/slides/{sid}").json()["photos"][0]
        kept = s.workspace / "display" / f"{photo['id']}.jpg"
        assert photo["state"] == "done" and not kept.exists()  # screening made no picture
        first = c.get(f"/api/photos/{photo['id']}/image")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg" and kept.is_file()
        shown = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_COLOR)
        assert shown.shape[:2] == tuple(round(v * photo["display_scale"]) for v in rgb.shape[:2])
        assert np.abs(cv2.cvtColor(shown, cv2.COLOR_BGR2RGB).astype(int) - rgb).mean() < 8  # the photo, as JPEG
        assert c.get(f"/api/photos/{photo['id']}/image").content == first.content == kept.read_bytes()


def test_photos_queued_while_a_batch_is_screened_join_it_and_one_to_be_screened_alone_waits(tmp_path, scoring, fields):
    import threading

    from malaria_cnn.screening.screen import MAX_PIXELS
    from malaria_cnn.serve import worker
    from malaria_cnn.serve.store import Store

    store = Store(tmp_path / "serve.sqlite3")
    (tmp_path / "uploads").mkdir()
    slide = store.add_slide("streamed")
    data = png(next(iter(fields.values())).rgb)
    ids = [store.add_photo(slide, f"{i}.png") for i in range(6)]
    for i in ids:
        (tmp_path / "uploads" / f"{i}.png").write_bytes(data)
        store.queue_photo(i, f"{i}.png")
    store._write("UPDATE photos SET alone = 1 WHERE id = ?", (ids[3],))  # interrupted once: to be screened alone
    screens, real = [], worker.screen

    def counted(*args, **kwargs):
        screens.append(1)
        return real(*args, **kwargs)

    w = worker.Worker(store, tmp_path, scoring, threading.Lock(), MAX_PIXELS, "sha", batch=2)
    try:
        worker.screen = counted
        w.screen_batch(store.claim(2))  # two claimed, the next claimed as they are screened, up to the alone one
        assert [store.photo(i)["state"] for i in ids] == ["done"] * 3 + ["queued"] * 3 and len(screens) == 1
        alone = store.claim(2)
        assert [r["id"] for r in alone] == [ids[3]]
        w.screen_batch(alone)  # by itself
        assert [store.photo(i)["state"] for i in ids] == ["done"] * 4 + ["queued"] * 2 and len(screens) == 2
        w.screen_batch(store.claim(2))
    finally:
        worker.screen = real
        w._storing.shutdown()
    assert [store.photo(i)["state"] for i in ids] == ["done"] * 6 and len(screens) == 3
    assert [store.photo(i)["attempts"] for i in ids] == [1] * 6  # the alone one put back uncounted
    store.close()
