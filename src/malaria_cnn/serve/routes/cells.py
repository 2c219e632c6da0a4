"""Cells: a person's answer, and the pictures of a cell (its crop, among its neighbours, the model's input,
its Grad-CAM)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from malaria_cnn.serve.routes.context import Context, context

router = APIRouter(prefix="/api/cells")


class NewAnswer(BaseModel):
    answer: Literal["parasitized", "uninfected", "not_cell", "skip"]


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})


@router.put("/{cell_id}/answer", summary="A person's answer for a cell (saved before the reply)")
def answer(cell_id: int, body: NewAnswer, ctx: Context = Depends(context)):
    cell = ctx.cell_or_404(cell_id)
    ctx.store.answer(cell_id, cell["slide_id"], body.answer)
    return {"cell": ctx.cell_record(ctx.store.cell(cell_id)),
            "summary": ctx.slide_record(ctx.store.slide(cell["slide_id"]))}


@router.get("/{cell_id}/crop", summary="The cell cut from its photo, on black (PNG)", response_class=Response)
def crop(cell_id: int, ctx: Context = Depends(context)):
    ctx.cell_or_404(cell_id)
    return _png(ctx.store.cell_image(cell_id, "crop"))


@router.get("/{cell_id}/context", summary="The cell among its neighbours, in the photo's colours (PNG)",
            response_class=Response)
def context_image(cell_id: int, ctx: Context = Depends(context)):
    from malaria_cnn.serve.explain import context_png

    cell = ctx.cell_or_404(cell_id)
    photo = ctx.store.photo(cell["photo_id"])
    path = ctx.display_or_404(photo)
    return _png(context_png(path.read_bytes(), (cell["x"], cell["y"], cell["w"], cell["h"]),
                            photo["display_scale"] or 1.0))


@router.get("/{cell_id}/input", summary="The cell as the model sees it: its standardised input (PNG)",
            response_class=Response)
def input_image(cell_id: int, ctx: Context = Depends(context)):
    ctx.cell_or_404(cell_id)
    return _png(ctx.cell_input(cell_id))


@router.get("/{cell_id}/gradcam", summary="Grad-CAM over the model's input for the cell (PNG)",
            response_class=Response)
def gradcam_image(cell_id: int, ctx: Context = Depends(context)):
    from malaria_cnn.serve.explain import gradcam_png

    cell = ctx.cell_or_404(cell_id)
    with ctx.model_lock:
        png = gradcam_png(ctx.settings.scoring.model, ctx.cell_input(cell_id), cell["label"])
    return _png(png)
