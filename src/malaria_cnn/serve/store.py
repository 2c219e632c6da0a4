"""The workspace's state in SQLite: slides, photos, the cells found in them and every review answer.

One writing connection, in WAL mode with full syncs, behind one lock: one writer at a time, and each write
committed before its caller goes on, so a server killed at any moment loses no answer it has
acknowledged. Reads use a connection of their own per thread (WAL lets them read while a write goes on),
so a page's poll never holds up an answer or the worker. Answers are never overwritten: each is a new
row, and undo marks the latest one taken back, so the history of a review stays whole. Each cell keeps
the sha256 of the model that scored it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from malaria_cnn.serve import schema

ANSWERS = ("parasitized", "uninfected", "not_cell", "skip")
STATES = ("queued", "screening", "done", "failed", "referred")
STOPPED_TWICE = ("the server stopped twice while screening this photo (out of memory?): it is not tried again; "
                 "send a smaller photo")


class StoreError(ValueError):
    """A record the workspace cannot hold (an unknown answer, state or image)."""


PHOTO_COLUMNS = ("id", "slide_id", "name", "state", "error", "referred", "width", "height", "display_scale",
                 "created", "done")
# the answer a cell has now: its latest answer not taken back
CURRENT_ANSWER = ("(SELECT a.answer FROM answers a WHERE a.cell_id = c.id AND a.undone = 0 "
                  "ORDER BY a.id DESC LIMIT 1)")


class Store:
    """The workspace database (DIR/serve.sqlite3). Every method is safe to call from any thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        schema.create(self._db)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not the writer's: a read never waits for a write

    def close(self) -> None:
        with self._lock, self._readers_lock:
            for db in self._readers:
                db.close()
            self._db.close()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own that reads one snapshot of the workspace until the block ends: a long read
        (an export) sees no write made meanwhile, and holds none up."""
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN")
            db.execute("SELECT COUNT(*) FROM meta").fetchone()  # the snapshot is taken at the first read
            yield db
        finally:
            db.close()

    def _write(self, sql: str, args: Iterable = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            db.row_factory = sqlite3.Row
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        """Rows read on this thread's own connection (a consistent snapshot per statement)."""
        return [dict(r) for r in self._reader().execute(sql, tuple(args)).fetchall()]

    def _written_rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        """Rows read on the writing connection (inside its transactions; the caller holds the lock)."""
        return [dict(r) for r in self._db.execute(sql, tuple(args)).fetchall()]

    def _transaction(self):
        return _Transaction(self)

    # -- meta --
    def set_meta(self, key: str, value) -> None:
        self._write("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        with self._lock:
            rows = self._written_rows("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    # -- slides --
    def add_slide(self, name: str) -> int:
        """The new slide's id; sqlite3.IntegrityError when the name is taken (case-insensitive)."""
        return self._write("INSERT INTO slides(name, created) VALUES (?, ?)", (name, time.time())).lastrowid

    def slides(self) -> list[dict]:
        return self._rows("SELECT id, name, created FROM slides ORDER BY id")

    def slide(self, slide_id: int) -> dict | None:
        rows = self._rows("SELECT id, name, created FROM slides WHERE id = ?", (slide_id,))
        return rows[0] if rows else None

    # -- photos --
    def add_photo(self, slide_id: int, name: str, state: str = "queued", error: str = "") -> int:
        return self._write("INSERT INTO photos(slide_id, name, state, error, created) VALUES (?, ?, ?, ?, ?)",
                           (slide_id, name, state, error, time.time())).lastrowid

    def queue_photo(self, photo_id: int, file: str) -> None:
        """A photo whose file is now whole in the workspace, queued for screening."""
        self._write("UPDATE photos SET file = ?, state = 'queued', error = '' WHERE id = ?", (file, photo_id))

    def fail_photo(self, photo_id: int, error: str) -> None:
        self._write("UPDATE photos SET state = 'failed', error = ?, done = ? WHERE id = ?", (error, time.time(), photo_id))

    def photos(self, slide_id: int | None = None) -> list[dict]:
        """Photos with their stored figures (`counts`, see summary.photo_counts; `cells` and `called` from them)."""
        where, args = ("WHERE slide_id = ?", (slide_id,)) if slide_id is not None else ("", ())
        return _with_counts(self._rows(f"SELECT {', '.join(PHOTO_COLUMNS)}, counts FROM photos {where} ORDER BY id",
                                       args))

    def photo(self, photo_id: int) -> dict | None:
        rows = _with_counts(self._rows(f"SELECT {', '.join(PHOTO_COLUMNS)}, file, attempts, counts FROM photos "
                                       "WHERE id = ?", (photo_id,)))
        return rows[0] if rows else None

    def uncounted(self) -> list[int]:
        """Photos screened without stored figures (by an earlier version)."""
        return [r["id"] for r in self._rows("SELECT id FROM photos WHERE state IN ('done', 'referred') AND counts IS NULL")]

    def set_counts(self, photo_id: int, counts: dict, flagged: set[int]) -> None:
        """A photo's figures and which of its cells are flagged (for a photo screened by an earlier version)."""
        with self._lock, self._transaction():
            self._db.execute("UPDATE photos SET counts = ? WHERE id = ?", (json.dumps(counts), photo_id))
            self._db.execute("UPDATE cells SET flagged = (id IN (SELECT value FROM json_each(?))) WHERE photo_id = ?",
                             (json.dumps(sorted(flagged)), photo_id))

    def requeue_interrupted(self) -> tuple[int, int]:
        """Photos left mid-screening by a server that stopped: (requeued, failed). One interrupted in a batch
        goes back to the queue, to be screened alone; one interrupted while screened alone is failed with
        its reason (STOPPED_TWICE), so a photo that stops the server is not tried forever."""
        with self._lock, self._transaction():
            failed = self._db.execute("UPDATE photos SET state = 'failed', error = ?, done = ? "
                                      "WHERE state = 'screening' AND alone = 1", (STOPPED_TWICE, time.time())).rowcount
            requeued = self._db.execute("UPDATE photos SET state = 'queued', alone = 1 "
                                        "WHERE state = 'screening'").rowcount
        return requeued, failed

    def release(self, photo_ids: list[int]) -> None:
        """Photos claimed by a worker that stops before screening them go back to the queue as they were."""
        with self._lock, self._transaction():
            self._db.executemany("UPDATE photos SET state = 'queued', attempts = attempts - 1 "
                                 "WHERE id = ? AND state = 'screening'", [(i,) for i in photo_ids])

    def claim(self, limit: int) -> list[dict]:
        """Up to `limit` queued photos, oldest first, marked as being screened; a photo to be screened alone
        (interrupted before) is claimed by itself."""
        with self._lock, self._transaction():
            rows = self._written_rows("SELECT id, file, alone FROM photos WHERE state = 'queued' ORDER BY id LIMIT ?",
                                      (limit,))
            if rows and rows[0]["alone"]:
                rows = rows[:1]
            else:
                rows = rows[:next((i for i, r in enumerate(rows) if r["alone"]), len(rows))]
            self._db.executemany("UPDATE photos SET state = 'screening', attempts = attempts + 1 WHERE id = ?",
                                 [(r["id"],) for r in rows])
        return rows

    def queued(self) -> int:
        return self._rows("SELECT COUNT(*) AS n FROM photos WHERE state IN ('queued', 'screening')")[0]["n"]

    def save_result(self, photo_id: int, state: str, error: str, referred: str, size: tuple[int, int] | None,
                    display_scale: float | None, cells: list[dict], model: str = "", counts: dict | None = None) -> None:
        """A screened photo's outcome and its cells scored by `model` (its sha256), in one transaction (a photo
        screened again replaces its cells; the answers of a photo already done are never touched: its cells
        are not replaced)."""
        if state not in STATES:
            raise StoreError(f"unknown photo state {state!r}: one of {', '.join(STATES)}")
        width, height = size or (None, None)
        with self._lock, self._transaction():
            current = self._written_rows("SELECT state FROM photos WHERE id = ?", (photo_id,))
            if not current or current[0]["state"] in ("done", "referred"):
                return
            self._db.execute("DELETE FROM cells WHERE photo_id = ?", (photo_id,))
            self._db.executemany(
                "INSERT INTO cells(photo_id, n, x, y, w, h, p, label, outline, crop, input, model, flagged, kind) "
                "VALUES (:photo_id, :n, :x, :y, :w, :h, :p, :label, :outline, :crop, :input, :model, :flagged, :kind)",
                [{"flagged": None, "kind": "", **c, "photo_id": photo_id, "outline": json.dumps(c["outline"]), "model": model}
                 for c in cells])
            self._db.execute("UPDATE photos SET state = ?, error = ?, referred = ?, width = ?, height = ?, "
                             "display_scale = ?, done = ?, counts = ? WHERE id = ?",
                             (state, error, referred, width, height, display_scale, time.time(),
                              json.dumps(counts) if counts is not None else None, photo_id))

    # -- cells --
    def cells(self, photo_id: int | None = None, slide_id: int | None = None, outlines: bool = False,
              answered: bool = False, flagged: bool = False) -> list[dict]:
        """Cells of a photo or of a slide (photos done or referred; with `answered`, only the cells with an
        answer; with `flagged`, only those flagged on its photos done), with their current answer and whether
        they are flagged (stored when screened)."""
        if photo_id is not None:
            where, args = "c.photo_id = ?", (photo_id,)
        elif flagged:  # read through the index of the flagged cells: a row per cell shown, not per cell
            where, args = "ph.slide_id = ? AND ph.state = 'done' AND c.flagged = 1", (slide_id,)
        elif answered:
            where, args = "c.id IN (SELECT cell_id FROM answers WHERE slide_id = ? AND undone = 0)", (slide_id,)
        else:
            where, args = "ph.slide_id = ?", (slide_id,)
        rows = self._rows(f"SELECT c.id, c.photo_id, ph.slide_id, c.n, c.x, c.y, c.w, c.h, c.p, c.label, c.flagged, c.kind, "
                          f"ph.state AS photo_state{', c.outline' if outlines else ''} "
                          f"FROM cells c JOIN photos ph ON ph.id = c.photo_id WHERE {where} ORDER BY c.photo_id, c.n",
                          args)
        current = self._current_answers(rows[0]["slide_id"]) if rows else {}
        for r in rows:
            r["answer"] = current.get(r["id"])
            if outlines:
                r["outline"] = json.loads(r["outline"])
        return rows

    def _current_answers(self, slide_id: int) -> dict[int, str]:
        """Each answered cell's current answer (its latest not taken back), for one slide: one query, not one
        per cell."""
        rows = self._reader().execute("SELECT cell_id, answer FROM answers WHERE slide_id = ? AND undone = 0 "
                                      "ORDER BY id", (slide_id,)).fetchall()
        return {cell_id: answer for cell_id, answer in rows}

    def cell(self, cell_id: int) -> dict | None:
        rows = self._rows(f"SELECT c.id, c.photo_id, ph.slide_id, c.n, c.x, c.y, c.w, c.h, c.p, c.label, c.flagged, c.kind, "
                          f"ph.state AS photo_state, {CURRENT_ANSWER} AS answer "
                          "FROM cells c JOIN photos ph ON ph.id = c.photo_id WHERE c.id = ?", (cell_id,))
        return rows[0] if rows else None

    def cell_image(self, cell_id: int, column: str) -> bytes | None:
        if column not in ("crop", "input"):
            raise StoreError(f"a cell has no picture {column!r}: crop or input")
        rows = self._rows(f"SELECT {column} FROM cells WHERE id = ?", (cell_id,))
        return bytes(rows[0][column]) if rows else None

    # -- answers --
    def answer(self, cell_id: int, slide_id: int, answer: str) -> None:
        if answer not in ANSWERS:
            raise StoreError(f"unknown answer {answer!r}: one of {', '.join(ANSWERS)}")
        self._write("INSERT INTO answers(cell_id, slide_id, answer, at) VALUES (?, ?, ?, ?)",
                    (cell_id, slide_id, answer, time.time()))

    def undo(self, slide_id: int) -> int | None:
        """Take back the slide's latest answer still standing; the id of its cell, or None."""
        with self._lock, self._transaction():
            rows = self._written_rows("SELECT id, cell_id FROM answers WHERE slide_id = ? AND undone = 0 ORDER BY id DESC "
                              "LIMIT 1", (slide_id,))
            if not rows:
                return None
            self._db.execute("UPDATE answers SET undone = 1 WHERE id = ?", (rows[0]["id"],))
        return rows[0]["cell_id"]

    def answers(self, slide_id: int | None = None) -> list[dict]:
        """Every answer given (taken back ones too), oldest first."""
        where, args = ("WHERE slide_id = ?", (slide_id,)) if slide_id is not None else ("", ())
        return self._rows(f"SELECT id, cell_id, slide_id, answer, at, undone FROM answers {where} ORDER BY id", args)


def _with_counts(rows: list[dict]) -> list[dict]:
    for r in rows:
        counts = json.loads(r["counts"]) if r["counts"] else None
        r["counts"], r["cells"], r["called"] = counts, (counts or {}).get("cells", 0), (counts or {}).get("called", 0)
    return rows


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception (the caller holds the store's lock)."""

    def __init__(self, store: Store):
        self.db = store._db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
