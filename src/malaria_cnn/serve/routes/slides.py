"""Slides: the list, a new slide, one slide with its photos, its review and the undo of its latest answer."""

from __future__ import annotations

import re
import sqlite3

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from malaria_cnn.serve.routes.context import Context, context, photo_record

router = APIRouter(prefix="/api/slides")
SLIDE_NAME = r"^[\w .-]{1,80}$"


class NewSlide(BaseModel):
    name: str = Field(description="1-80 letters, digits, spaces, '-', '_' or '.'", examples=["P17 2026-12-04"])


@router.get("", summary="Every slide with its summary")
def list_slides(ctx: Context = Depends(context)):
    return {"slides": [ctx.slide_record(r) for r in ctx.store.slides()]}


@router.post("", status_code=201, summary="A new slide")
def new_slide(body: NewSlide, ctx: Context = Depends(context)):
    name = " ".join(body.name.split())
    if not re.fullmatch(SLIDE_NAME, name):
        raise HTTPException(422, "a slide's name is 1-80 letters, digits, spaces, '-', '_' or '.'")
    try:
        slide_id = ctx.store.add_slide(name)
    except sqlite3.IntegrityError:
        raise HTTPException(409, f"a slide named {name!r} exists: choose another name") from None
    return ctx.slide_record(ctx.store.slide(slide_id))


@router.get("/{slide_id}", summary="A slide with its summary and photos")
def get_slide(slide_id: int, ctx: Context = Depends(context)):
    row = ctx.slide_or_404(slide_id)
    photos = ctx.store.photos(slide_id)  # read once: the summary and the list agree while photos are screened
    return {**ctx.slide_record(row, photos), "photos": [photo_record(p) for p in photos]}


@router.get("/{slide_id}/review", summary="The cells flagged for review, most likely parasite first")
def review(slide_id: int, ctx: Context = Depends(context)):
    row, rule = ctx.slide_or_404(slide_id), ctx.rule
    flagged = ctx.store.cells(slide_id=slide_id, flagged=True)  # as flagged when screened: not every cell read
    cells = sorted(flagged, key=lambda c: (rule.review_order(c["p"]), c["id"]))
    return {"cells": [ctx.cell_record(c) for c in cells], "summary": ctx.slide_record(row)}


@router.post("/{slide_id}/undo", summary="Take back the slide's latest answer")
def undo(slide_id: int, ctx: Context = Depends(context)):
    row = ctx.slide_or_404(slide_id)
    cell_id = ctx.store.undo(slide_id)
    return {"cell": ctx.cell_record(ctx.store.cell(cell_id)) if cell_id is not None else None,
            "summary": ctx.slide_record(row)}
