"""The workspace database's tables, created or brought up to date when a workspace is opened."""

from __future__ import annotations

import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS slides (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY, slide_id INTEGER NOT NULL REFERENCES slides(id), name TEXT NOT NULL,
    file TEXT NOT NULL DEFAULT '', state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
    referred TEXT NOT NULL DEFAULT '', width INTEGER, height INTEGER, display_scale REAL,
    attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, done REAL, alone INTEGER NOT NULL DEFAULT 0,
    counts TEXT);
CREATE INDEX IF NOT EXISTS photos_slide ON photos(slide_id);
CREATE INDEX IF NOT EXISTS photos_state ON photos(state);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY, photo_id INTEGER NOT NULL REFERENCES photos(id), n INTEGER NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL, p REAL NOT NULL,
    label TEXT NOT NULL, outline TEXT NOT NULL, crop BLOB NOT NULL, input BLOB NOT NULL, model TEXT NOT NULL DEFAULT '',
    flagged INTEGER, kind TEXT NOT NULL DEFAULT '', UNIQUE (photo_id, n));
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, cell_id INTEGER NOT NULL REFERENCES cells(id),
    slide_id INTEGER NOT NULL REFERENCES slides(id), answer TEXT NOT NULL, at REAL NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS answers_cell ON answers(cell_id);
CREATE INDEX IF NOT EXISTS answers_slide ON answers(slide_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def create(db: sqlite3.Connection) -> None:
    """The tables, and the columns added since a workspace was made: a photo screened alone, its figures;
    whether a cell is flagged (and an index of the flagged), the model that scored it (the workspace's, for
    cells scored before it was kept), what segmentation found it to be (red cell or uncertain object; '' for
    cells found before it was kept)."""
    db.executescript(SCHEMA)
    columns = {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in ("photos", "cells")}
    if "alone" not in columns["photos"]:
        db.execute("ALTER TABLE photos ADD COLUMN alone INTEGER NOT NULL DEFAULT 0")
    if "counts" not in columns["photos"]:
        db.execute("ALTER TABLE photos ADD COLUMN counts TEXT")
    if "flagged" not in columns["cells"]:
        db.execute("ALTER TABLE cells ADD COLUMN flagged INTEGER")
    if "kind" not in columns["cells"]:
        db.execute("ALTER TABLE cells ADD COLUMN kind TEXT NOT NULL DEFAULT ''")
    if "model" not in columns["cells"]:
        db.execute("ALTER TABLE cells ADD COLUMN model TEXT NOT NULL DEFAULT ''")
        model = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if model:
            db.execute("UPDATE cells SET model = ?", (json.loads(model[0])["sha256"],))
    db.execute("CREATE INDEX IF NOT EXISTS cells_flagged ON cells(photo_id) WHERE flagged = 1")
