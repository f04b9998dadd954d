"""The web console at ``/``: hub health and the live event stream in one page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()


@router.get("/", include_in_schema=False)
async def console() -> HTMLResponse:
    page = resources.files("hub.api").joinpath("console.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
