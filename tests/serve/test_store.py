"""The workspace's store: a photo interrupted twice is failed with its reason, not retried forever; its
batch-mates are screened again, alone; unknown records are domain errors; reads do not wait on a writer."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from malaria_cnn.serve.store import STOPPED_TWICE, Store, StoreError


def test_a_photo_interrupted_in_a_batch_is_screened_alone_and_failed_when_interrupted_again(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    slide = store.add_slide("A")
    ids = [store.add_photo(slide, f"{i}.png") for i in range(4)]
    for i in ids:
        store.queue_photo(i, f"{i}.png")
    assert [r["id"] for r in store.claim(3)] == ids[:3]  # the server is killed while screening these
    assert store.requeue_interrupted() == (3, 0)  # the next start: each goes back, to be screened alone
    assert [r["id"] for r in store.claim(3)] == [ids[0]]
    store.save_result(ids[0], "done", "", "", (10, 10), 1.0, [])
    assert [r["id"] for r in store.claim(3)] == [ids[1]]  # killed again, screening ids[1] alone
    assert store.requeue_interrupted() == (0, 1)
    photo = store.photo(ids[1])
    assert photo["state"] == "failed" and photo["error"] == STOPPED_TWICE
    assert [r["id"] for r in store.claim(3)] == [ids[2]]
    store.release([ids[2]])  # a worker stopped on purpose puts its claim back, uncounted
    assert store.photo(ids[2])["state"] == "queued" and store.photo(ids[2])["attempts"] == 2 - 1
    assert [r["id"] for r in store.claim(3)] == [ids[2]]
    assert [r["id"] for r in store.claim(3)] == [ids[3]]  # not alone: a batch again


def test_unknown_answers_states_and_pictures_are_domain_errors(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    slide = store.add_slide("A")
    photo = store.add_photo(slide, "a.png")
    with pytest.raises(StoreError, match="unknown answer 'maybe'"):
        store.answer(1, slide, "maybe")
    with pytest.raises(StoreError, match="unknown photo state 'lost'"):
        store.save_result(photo, "lost", "", "", None, None, [])
    with pytest.raises(StoreError, match="no picture 'outline'"):
        store.cell_image(1, "outline")


def test_reads_go_on_while_a_write_transaction_is_open(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    store.add_slide("A")
    entered, leave = threading.Event(), threading.Event()

    def long_write():
        with store._lock, store._transaction():
            store._db.execute("INSERT INTO slides(name, created) VALUES ('B', 0)")
            entered.set()
            leave.wait(5)

    writer = threading.Thread(target=long_write)
    writer.start()
    entered.wait(5)
    t0 = time.monotonic()
    names = [r["name"] for r in store.slides()]  # on its own connection: the committed state, at once
    assert time.monotonic() - t0 < 0.5 and names == ["A"]
    leave.set()
    writer.join()
    assert [r["name"] for r in store.slides()] == ["A", "B"]


def test_a_workspace_made_before_cells_kept_their_model_and_kind_gets_the_workspace_model(tmp_path):
    path = tmp_path / "old.sqlite3"
    store = Store(path)
    store.set_meta("model", {"path": "m.keras", "sha256": "a" * 64})
    slide = store.add_slide("A")
    photo = store.add_photo(slide, "a.png")
    store.close()
    with sqlite3.connect(path) as db:  # as an older version left it: no model and no kind per cell
        db.execute("ALTER TABLE cells DROP COLUMN model")
        db.execute("ALTER TABLE cells DROP COLUMN kind")
        db.execute("INSERT INTO cells(photo_id, n, x, y, w, h, p, label, outline, crop, input) "
                   "VALUES (?, 1, 0, 0, 1, 1, 0.5, 'Uninfected', '[]', x'00', x'00')", (photo,))
    store = Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT model FROM cells").fetchall() == [("a" * 64,)]
    assert [c["kind"] for c in store.cells(slide_id=slide)] == [""]  # not known: the page shows none
