"""The web app of `malaria-cnn serve`: the pages, the JSON endpoints they use, and the guards around them.

One model, loaded once, is shared by the screening worker and the Grad-CAM endpoint. Every error a page
meets is one line of JSON (`{"error": ...}`) or one line on an error page; an unexpected one is logged
to a file of its own and named. With a token, every request must carry it (a header, or the cookie a
visit with `?token=` sets); bound to the loopback interface, requests must name a loopback host, so a
web page elsewhere cannot reach the app through a DNS name it controls.
"""

from __future__ import annotations

import hmac
import re
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from malaria_cnn.core.errors import log_internal
from malaria_cnn.screening.screen import MAX_PIXELS
from malaria_cnn.serve import export, summary, uploads
from malaria_cnn.serve.limits import MB, UploadLimits
from malaria_cnn.serve.store import ANSWERS, Store
from malaria_cnn.serve.worker import Worker

HERE = Path(__file__).parent
COOKIE = "malaria_cnn_token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
SLIDE_NAME = r"^[\w .-]{1,80}$"


@dataclass
class Settings:
    workspace: Path
    scoring: object  # release.options.Scoring: the model and what is stored beside it
    model_path: Path
    model_sha256: str
    token: str | None = None
    loopback_only: bool = True  # requests must name a loopback host (the server listens on one)
    limits: UploadLimits = field(default_factory=UploadLimits)
    start_worker: bool = True


class NewSlide(BaseModel):
    name: str = Field(description="1-80 letters, digits, spaces, '-', '_' or '.'", examples=["P17 2026-12-04"])


class NewAnswer(BaseModel):
    answer: Literal["parasitized", "uninfected", "not_cell", "skip"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _host(header: str) -> str:
    """The host a request names, without its port ("[::1]:8000" -> "[::1]")."""
    return header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]


def _one_line(text) -> str:
    return " ".join(str(text).split())


def create_app(s: Settings) -> FastAPI:
    """The app for a workspace and a loaded model."""
    store = Store(s.workspace / "serve.sqlite3")
    store.set_meta("model", {"path": str(s.model_path), "sha256": s.model_sha256})
    model_lock, upload_lock = threading.Lock(), threading.Lock()
    rule = summary.Rule(s.scoring.threshold, s.scoring.rule)
    worker = Worker(store, s.workspace, s.scoring, model_lock, s.limits.max_pixels or MAX_PIXELS)
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if s.start_worker:
            worker.start()
        yield
        if s.start_worker:
            worker.stop()
        store.close()

    app = FastAPI(title="malaria-cnn serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Screen a slide's smear photos, review the model's cell calls, export the corrections.")
    app.state.store, app.state.worker, app.state.settings = store, worker, s
    app.mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _host(request.headers.get("host") or "")
        if s.loopback_only and host not in LOOPBACK_HOSTS:
            return _error(421, f"this server answers on 127.0.0.1 only, not on the host {host or '(none)'}")
        if s.token:
            given = request.query_params.get("token")
            if given is not None and request.method == "GET" and not request.url.path.startswith("/api/"):
                if not hmac.compare_digest(given, s.token):
                    return _error(401, "wrong token")
                target = request.url.path
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(COOKIE, s.token, httponly=True, samesite="strict")
                return response
            auth = request.headers.get("authorization", "")
            sent = auth[7:] if auth.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(sent.encode(), s.token.encode()):
                return _error(401, "this server needs its token: open the address it printed (with ?token=...), "
                                   "or send 'Authorization: Bearer <token>'")
        if request.url.path.endswith("/photos") and request.method == "POST":
            length = int(request.headers.get("content-length") or 0)
            if length > s.limits.max_files * s.limits.max_upload_mb * MB:
                return _error(413, f"the upload is {length / MB:,.0f} MB: send at most {s.limits.max_files} files of "
                                   f"{s.limits.max_upload_mb} MB at once")
        try:
            return await call_next(request)
        except Exception as exc:  # an internal error: one line, the traceback in a log file
            where = log_internal(exc)
            return _error(500, f"internal error ({type(exc).__name__}); details in {where}")

    def _page_or_json(request: Request, status: int, message: str):
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            return _error(status, message)
        return templates.TemplateResponse(request, "error.html", {"title": "Error", "message": message},
                                          status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _page_or_json(request, exc.status_code, _one_line(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _page_or_json(request, 422, _one_line(f"{where}: {first.get('msg', 'invalid')}"))

    def _slide_or_404(slide_id: int) -> dict:
        row = store.slide(slide_id)
        if row is None:
            raise HTTPException(404, f"no slide {slide_id}")
        return row

    def slide_record(row: dict, photos: list[dict] | None = None) -> dict:
        photos = store.photos(row["id"]) if photos is None else photos
        return summary.slide(row, photos, store.cells(slide_id=row["id"]), rule)

    def photo_record(row: dict) -> dict:
        return {k: row[k] for k in ("id", "slide_id", "name", "state", "error", "referred", "width", "height",
                                    "display_scale", "cells", "called", "created", "done")}

    def cell_record(row: dict, flagged: set[int] | None = None) -> dict:
        """A cell's JSON; `flagged`: the ids flagged among its photo's cells (read when not given)."""
        if flagged is None:
            flagged = rule.flagged(store.cells(photo_id=row["photo_id"]))
        out = {"id": row["id"], "photo_id": row["photo_id"], "n": row["n"],
               "box": [row["x"], row["y"], row["w"], row["h"]], "p": row["p"], "label": row["label"],
               "flagged": row["photo_state"] == "done" and row["id"] in flagged,
               "answer": row["answer"]}
        if "outline" in row:
            out["outline"] = row["outline"]
        return out

    # -- pages --
    def page(request: Request, name: str, title: str, slide_id: int | None = None):
        return templates.TemplateResponse(request, name, {"title": title, "slide_id": slide_id})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def slides_page(request: Request):
        return page(request, "slides.html", "Slides")

    @app.get("/slides/new", response_class=HTMLResponse, include_in_schema=False)
    def new_slide_page(request: Request):
        return page(request, "new_slide.html", "New slide")

    @app.get("/slides/{slide_id}", response_class=HTMLResponse, include_in_schema=False)
    def slide_page(request: Request, slide_id: int):
        return page(request, "slide.html", _slide_or_404(slide_id)["name"], slide_id)

    @app.get("/slides/{slide_id}/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page(request: Request, slide_id: int):
        return page(request, "review.html", f"Review {_slide_or_404(slide_id)['name']}", slide_id)

    # -- JSON --
    @app.get("/api/status", summary="The model, the queue and the upload limits")
    def status():
        m = s.scoring
        return {"model": {"path": str(s.model_path), "sha256": s.model_sha256, "threshold": m.threshold,
                          "size": m.size, "rule": m.rule is not None, "source": m.source},
                "queued": store.queued(), "limits": s.limits.as_dict()}

    @app.get("/api/slides", summary="Every slide with its summary")
    def list_slides():
        return {"slides": [slide_record(r) for r in store.slides()]}

    @app.post("/api/slides", status_code=201, summary="A new slide")
    def new_slide(body: NewSlide):
        import sqlite3

        name = " ".join(body.name.split())
        if not re.fullmatch(SLIDE_NAME, name):
            raise HTTPException(422, "a slide's name is 1-80 letters, digits, spaces, '-', '_' or '.'")
        try:
            slide_id = store.add_slide(name)
        except sqlite3.IntegrityError:
            raise HTTPException(409, f"a slide named {name!r} exists: choose another name") from None
        return slide_record(store.slide(slide_id))

    @app.get("/api/slides/{slide_id}", summary="A slide with its summary and photos")
    def get_slide(slide_id: int):
        row = _slide_or_404(slide_id)
        photos = store.photos(slide_id)  # read once: the summary and the list agree while photos are screened
        return {**slide_record(row, photos), "photos": [photo_record(p) for p in photos]}

    @app.post("/api/slides/{slide_id}/photos", summary="Upload photos (or zips of photos) to a slide")
    def upload(slide_id: int, files: list[UploadFile] = File(description="photos, or zips of photos")):
        _slide_or_404(slide_id)
        limits = s.limits
        if len(files) > limits.max_files:
            raise HTTPException(413, f"{len(files)} files sent at once: send at most {limits.max_files}")
        with upload_lock:  # the room on the slide is counted and filled in one step
            return _store_files(slide_id, files)

    def _store_files(slide_id: int, files: list[UploadFile]) -> dict:
        limits = s.limits
        room = limits.max_photos_per_slide - len(store.photos(slide_id))
        if room < len(files):
            raise HTTPException(413, f"the slide holds at most {limits.max_photos_per_slide:,} photos: "
                                     f"it has room for {max(room, 0):,} more")
        ids = []
        tmp = s.workspace / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for f in files:
            fd, path = tempfile.mkstemp(dir=tmp, prefix="upload-")
            try:
                with open(fd, "wb") as out:
                    shutil.copyfileobj(f.file, out, 1 << 20)
                size = Path(path).stat().st_size
                ids += uploads.accept(store, s.workspace / "uploads", slide_id, f.filename or "", Path(path), size,
                                      limits, room - len(ids))
            finally:
                Path(path).unlink(missing_ok=True)
                Path(path).with_suffix(".zip").unlink(missing_ok=True)
        worker.wake.set()
        return {"photos": [photo_record(store.photo(i)) for i in ids]}

    @app.get("/api/photos/{photo_id}", summary="A photo with its cells and their outlines")
    def get_photo(photo_id: int):
        row = store.photo(photo_id)
        if row is None:
            raise HTTPException(404, f"no photo {photo_id}")
        cells = store.cells(photo_id=photo_id, outlines=True)
        flagged = rule.flagged(cells)
        return {**photo_record(row), "cells": [cell_record(c, flagged) for c in cells]}

    @app.get("/api/photos/{photo_id}/image", summary="The photo as JPEG (its display copy)",
             response_class=FileResponse)
    def photo_image(photo_id: int):
        path = s.workspace / "display" / f"{photo_id}.jpg"
        if not path.is_file():
            raise HTTPException(404, f"photo {photo_id} has no picture yet (not screened, or failed)")
        return FileResponse(path, media_type="image/jpeg")

    def _cell_or_404(cell_id: int) -> dict:
        row = store.cell(cell_id)
        if row is None:
            raise HTTPException(404, f"no cell {cell_id}")
        return row

    def _png(data: bytes) -> Response:
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/cells/{cell_id}/crop", summary="The cell cut from its photo, on black (PNG)",
             response_class=Response)
    def crop(cell_id: int):
        _cell_or_404(cell_id)
        return _png(store.cell_image(cell_id, "crop"))

    @app.get("/api/cells/{cell_id}/context", summary="The cell among its neighbours, in the photo's colours (PNG)",
             response_class=Response)
    def context_image(cell_id: int):
        from malaria_cnn.serve.explain import context_png

        cell = _cell_or_404(cell_id)
        photo = store.photo(cell["photo_id"])
        path = s.workspace / "display" / f"{cell['photo_id']}.jpg"
        if not path.is_file():
            raise HTTPException(404, f"photo {cell['photo_id']} has no picture")
        return _png(context_png(path.read_bytes(), (cell["x"], cell["y"], cell["w"], cell["h"]),
                                photo["display_scale"] or 1.0))

    @app.get("/api/cells/{cell_id}/input", summary="The cell as the model sees it: its standardised input (PNG)",
             response_class=Response)
    def input_image(cell_id: int):
        _cell_or_404(cell_id)
        return _png(store.cell_image(cell_id, "input"))

    @app.get("/api/cells/{cell_id}/gradcam", summary="Grad-CAM over the model's input for the cell (PNG)",
             response_class=Response)
    def gradcam_image(cell_id: int):
        from malaria_cnn.serve.explain import gradcam_png

        cell = _cell_or_404(cell_id)
        with model_lock:
            png = gradcam_png(s.scoring.model, store.cell_image(cell_id, "input"), cell["label"])
        return _png(png)

    @app.get("/api/slides/{slide_id}/review", summary="The cells flagged for review, most likely parasite first")
    def review(slide_id: int):
        row = _slide_or_404(slide_id)
        done = [c for c in store.cells(slide_id=slide_id) if c["photo_state"] == "done"]
        flagged = rule.flagged(done)
        cells = sorted((c for c in done if c["id"] in flagged), key=lambda c: (rule.review_order(c["p"]), c["id"]))
        return {"cells": [cell_record(c, flagged) for c in cells], "summary": slide_record(row)}

    @app.put("/api/cells/{cell_id}/answer", summary="A person's answer for a cell (saved before the reply)")
    def answer(cell_id: int, body: NewAnswer):
        cell = _cell_or_404(cell_id)
        assert body.answer in ANSWERS
        store.answer(cell_id, cell["slide_id"], body.answer)
        return {"cell": cell_record(store.cell(cell_id)), "summary": slide_record(store.slide(cell["slide_id"]))}

    @app.post("/api/slides/{slide_id}/undo", summary="Take back the slide's latest answer")
    def undo(slide_id: int):
        row = _slide_or_404(slide_id)
        cell_id = store.undo(slide_id)
        return {"cell": cell_record(store.cell(cell_id)) if cell_id is not None else None,
                "summary": slide_record(row)}

    @app.get("/api/export", summary="The reviewed cells as a zip the pipeline trains on (NIH layout + COCO JSON)",
             response_class=FileResponse)
    def export_zip(slide: list[int] = Query(default=[], description="slide ids; every slide when none")):
        slides = [_slide_or_404(i) for i in slide] if slide else store.slides()
        if not slides:
            raise HTTPException(404, "no slides to export")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        photos, cells, complete = _export_records(store, rule, slides)
        dest = s.workspace / "exports" / f"corrections-{stamp}-{secrets.token_hex(3)}.zip"  # kept: what was sent
        export.write(dest, photos, cells, s.model_sha256, complete, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return FileResponse(dest, media_type="application/zip", filename=dest.name)

    return app


def _export_records(store: Store, rule: summary.Rule, slides: list[dict]):
    """The export's photos and cells of these slides, and the slides whose review is complete."""
    names = {r["id"]: r["name"] for r in slides}
    photos = [export.ExportPhoto(p["id"], p["slide_id"], names[p["slide_id"]], p["name"], p["width"], p["height"])
              for sid in names for p in store.photos(sid) if p["state"] == "done"]
    rows = store.export_cells(list(names))
    flagged = rule.flagged(rows)
    cells = [export.ExportCell(c["id"], c["photo_id"], c["slide_id"], names[c["slide_id"]], c["n"],
                               (c["x"], c["y"], c["w"], c["h"]), c["p"], c["label"], c["answer"],
                               c["id"] in flagged, bytes(c["crop"]))
             for c in rows]
    complete = set()  # reviewed: a person answered every cell in doubt (and at least one cell)
    for sid in names:
        mine = [c for c in cells if c.slide_id == sid]
        answered = [c for c in mine if c.answer is not None]
        if answered and all(c.answer in ("parasitized", "uninfected", "not_cell") for c in mine if c.flagged):
            complete.add(sid)
    return photos, cells, complete
