"""The web app of `malaria-cnn serve`: the workspace, its one model and its worker, the routers by resource
(serve/routes/), behind the security checks of serve/guard.py.

One model, loaded once, is shared by the screening worker and the Grad-CAM endpoint; the workspace keeps
that model's sha256, and refuses another. Every error a page meets is one line of JSON (`{"error": ...}`)
or one line on an error page; an unexpected one is logged to a file of its own and named.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from malaria_cnn.core.errors import UserError
from malaria_cnn.screening.screen import MAX_PIXELS
from malaria_cnn.serve import summary
from malaria_cnn.serve.guard import COOKIE, Guard, Policy
from malaria_cnn.serve.limits import MB, UploadLimits
from malaria_cnn.serve.routes import cells, exports, pages, photos, slides
from malaria_cnn.serve.routes.context import Context
from malaria_cnn.serve.store import Store, StoreError
from malaria_cnn.serve.worker import Worker

__all__ = ["COOKIE", "Settings", "create_app"]
HERE = Path(__file__).parent
MULTIPART_SLACK = 1 * MB  # an upload's framing beyond its files' bytes


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


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def check_model(store: Store, workspace: Path, model_path: Path, sha256: str) -> None:
    """Record the workspace's model, or UserError (one line, both models named) when it holds another's."""
    recorded = store.meta("model")
    if recorded and recorded["sha256"] != sha256:
        raise UserError(f"the workspace {workspace} was screened by the model {recorded['path']} (sha256 "
                        f"{recorded['sha256'][:12]}), not by {model_path} (sha256 {sha256[:12]}): start with "
                        f"--model {recorded['path']}, or give this model a new workspace (--workspace NEW_FOLDER)")
    if not recorded:
        store.set_meta("model", {"path": str(model_path), "sha256": sha256})


def open_workspace(s: Settings) -> Store:
    """The workspace's store, its model checked (check_model)."""
    store = Store(s.workspace / "serve.sqlite3")
    try:
        check_model(store, s.workspace, s.model_path, s.model_sha256)
    except UserError:
        store.close()
        raise
    return store


def create_app(s: Settings):
    """The app (an ASGI app: FastAPI inside its guard) for a workspace and a loaded model; `.state` is the
    FastAPI app's state (store, worker, settings, context)."""
    store = open_workspace(s)
    rule = summary.Rule(s.scoring.threshold, s.scoring.rule)
    for photo_id in store.uncounted():  # photos screened by an earlier version: their figures, once
        found = store.cells(photo_id=photo_id)
        flagged = rule.flagged(found)
        store.set_counts(photo_id, summary.photo_counts(rule, found, flagged), flagged)
    model_lock = threading.Lock()  # the worker's scoring and a page's Grad-CAM take turns
    worker = Worker(store, s.workspace, s.scoring, model_lock, s.limits.max_pixels or MAX_PIXELS, s.model_sha256)
    ctx = Context(s, store, rule, worker, Jinja2Templates(directory=HERE / "templates"), model_lock)

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
    app.state.store, app.state.worker, app.state.settings, app.state.context = store, worker, s, ctx
    app.mount("/static", StaticFiles(directory=HERE / "static", check_dir=False), name="static")
    for router in (pages.router, slides.router, photos.router, cells.router, exports.router):
        app.include_router(router)
    _errors(app, ctx)
    policy = Policy(s.token, s.loopback_only, s.limits.max_files * s.limits.max_upload_mb * MB + MULTIPART_SLACK)
    app.add_middleware(Guard, policy=policy, upload_path=photos.is_upload)
    return app


def _errors(app: FastAPI, ctx: Context) -> None:
    """Every error as one line: JSON for the API, an error page for a page."""

    def page_or_json(request: Request, status: int, message: str):
        if request.url.path.startswith("/api/") or request.url.path == "/openapi.json":
            return _error(status, message)
        return ctx.templates.TemplateResponse(request, "error.html", {"title": "Error", "message": message},
                                              status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return page_or_json(request, exc.status_code, _one_line(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return page_or_json(request, 422, _one_line(f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StoreError)
    async def invalid_record(request: Request, exc: StoreError):
        return page_or_json(request, 422, _one_line(exc))
