"""The export: the reviewed cells of some slides (or all) as the zip the pipeline trains on."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse

from malaria_cnn.serve import export_store
from malaria_cnn.serve.routes.context import Context, context

router = APIRouter(prefix="/api")


@router.post("/export", summary="The reviewed cells as a zip the pipeline trains on (NIH layout + COCO JSON)",
            response_class=FileResponse)
def export_zip(slide: list[int] = Query(default=[], description="slide ids; every slide when none"),
               ctx: Context = Depends(context)):
    slides = [ctx.slide_or_404(i) for i in slide] if slide else ctx.store.slides()
    if not slides:
        raise HTTPException(404, "no slides to export")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    dest = ctx.settings.workspace / "exports" / f"corrections-{stamp}-{secrets.token_hex(3)}.zip"  # kept: what was sent
    export_store.write(ctx.store, ctx.rule, slides, dest, ctx.settings.model_sha256,
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return FileResponse(dest, media_type="application/zip", filename=dest.name)
