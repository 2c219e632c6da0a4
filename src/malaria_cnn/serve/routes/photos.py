"""Photos: an upload to a slide (read as it arrives, bounded before anything is kept), a photo with its cells,
and its display copy."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from malaria_cnn.serve import uploads
from malaria_cnn.serve.routes.context import Context, context, photo_record
from malaria_cnn.serve.upload_stream import Received, UploadRefused, discard, receive

router = APIRouter(prefix="/api")
UPLOAD_PATH = "/api/slides/{slide_id}/photos"


def is_upload(path: str) -> bool:
    """Whether a request to `path` may carry an upload's body (serve/guard.py bounds it)."""
    parts = path.strip("/").split("/")
    return len(parts) == 4 and parts[:2] == ["api", "slides"] and parts[3] == "photos"


def _room(ctx: Context, slide_id: int) -> int:
    return ctx.settings.limits.max_photos_per_slide - len(ctx.store.photos(slide_id))


def _full(ctx: Context, room: int, sent: str) -> str:
    return (f"the slide holds at most {ctx.settings.limits.max_photos_per_slide:,} photos: it has room for "
            f"{max(room, 0):,} more, and {sent}")


@router.post("/slides/{slide_id}/photos", summary="Upload photos (or zips of photos) to a slide",
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "properties": {"files": {"type": "array", "items": {
                     "type": "string", "format": "binary"}, "description": "photos, or zips of photos"}}}}}}})
async def upload(slide_id: int, request: Request, ctx: Context = Depends(context)):
    await run_in_threadpool(ctx.slide_or_404, slide_id)
    limits = ctx.settings.limits
    room = await run_in_threadpool(_room, ctx, slide_id)
    at_most = min(limits.max_files, room)
    too_many = (f"more than {limits.max_files} files sent at once: send at most {limits.max_files}"
                if at_most == limits.max_files else _full(ctx, room, "this upload holds more"))
    try:
        files = await receive(request.stream(), request.headers.get("content-type", ""), ctx.settings.workspace / "tmp",
                              at_most, too_many, limits.max_upload_mb)
    except UploadRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    try:
        ids = await run_in_threadpool(_store_files, ctx, slide_id, files)
    finally:
        discard(files)
    ctx.worker.wake.set()
    return {"photos": [photo_record(p) for p in await run_in_threadpool(lambda: [ctx.store.photo(i) for i in ids])]}


def _store_files(ctx: Context, slide_id: int, files: list[Received]) -> list[int]:
    """The sent files' photos stored, once the slide's room is counted for all of them (in one step)."""
    limits = ctx.settings.limits
    with ctx.upload_lock:
        room, count = _room(ctx, slide_id), uploads.photo_count(files, limits)
        if count > room:
            raise HTTPException(413, _full(ctx, room, f"this upload holds {count:,} photos"))
        ids = []
        for f in files:
            ids += uploads.accept(ctx.store, ctx.settings.workspace / "uploads", slide_id, f, limits)
        return ids


@router.get("/photos/{photo_id}", summary="A photo with its cells and their outlines")
def get_photo(photo_id: int, ctx: Context = Depends(context)):
    row = ctx.store.photo(photo_id)
    if row is None:
        raise HTTPException(404, f"no photo {photo_id}")
    cells = ctx.store.cells(photo_id=photo_id, outlines=True)
    flagged = ctx.rule.flagged(cells)
    return {**photo_record(row), "cells": [ctx.cell_record(c, flagged) for c in cells]}


@router.get("/photos/{photo_id}/image", summary="The photo as JPEG (its display copy)", response_class=FileResponse)
def photo_image(photo_id: int, ctx: Context = Depends(context)):
    row = ctx.store.photo(photo_id)
    if row is None:
        raise HTTPException(404, f"no photo {photo_id}")
    return FileResponse(ctx.display_or_404(row), media_type="image/jpeg")
