"""The HTML pages: each is a template the page's script fills from the JSON endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from malaria_cnn.serve.routes.context import Context, context

router = APIRouter(include_in_schema=False)


def _page(ctx: Context, request: Request, name: str, title: str, slide_id: int | None = None):
    return ctx.templates.TemplateResponse(request, name, {"title": title, "slide_id": slide_id})


@router.get("/", response_class=HTMLResponse)
def slides_page(request: Request, ctx: Context = Depends(context)):
    return _page(ctx, request, "slides.html", "Slides")


@router.get("/slides/new", response_class=HTMLResponse)
def new_slide_page(request: Request, ctx: Context = Depends(context)):
    return _page(ctx, request, "new_slide.html", "New slide")


@router.get("/slides/{slide_id}", response_class=HTMLResponse)
def slide_page(request: Request, slide_id: int, ctx: Context = Depends(context)):
    return _page(ctx, request, "slide.html", ctx.slide_or_404(slide_id)["name"], slide_id)


@router.get("/slides/{slide_id}/review", response_class=HTMLResponse)
def review_page(request: Request, slide_id: int, ctx: Context = Depends(context)):
    return _page(ctx, request, "review.html", f"Review {ctx.slide_or_404(slide_id)['name']}", slide_id)


@router.get("/api/status", summary="The model, the queue, the worker and the upload limits", include_in_schema=True)
def status(ctx: Context = Depends(context)):
    s, m = ctx.settings, ctx.settings.scoring
    return {"model": {"path": str(s.model_path), "sha256": s.model_sha256, "threshold": m.threshold,
                      "size": m.size, "rule": m.rule is not None, "source": m.source},
            "queued": ctx.store.queued(), "worker": {"running": ctx.worker.running, "error": ctx.worker.error},
            "limits": s.limits.as_dict()}
