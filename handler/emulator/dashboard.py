"""The emulator's live dashboard: one static page fed by server-sent events.

GET /dashboard          the page (static HTML/CSS/JS shipped in the package; no build step, no CDN)
GET /dashboard/state    the snapshot as JSON (what each event carries)
GET /dashboard/events   `text/event-stream` (sse-starlette): a snapshot at every change of the
                        endpoint, at most every `min_interval_s`, and at least once a second
The browser side is the standard `EventSource` (it reconnects by itself). The page shows no job
input or output, only ids, states, timings, progress and error messages.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from podfleet.emulator.observe import snapshot
from podfleet.emulator.state import EndpointState
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = ["dashboard_routes"]

_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _static(name: str) -> str:
    return resources.files("podfleet.emulator").joinpath("static", name).read_text("utf-8")


def dashboard_routes(state: EndpointState, *, min_interval_s: float = 0.25) -> list[Route]:
    async def page(request: Request) -> Response:
        return HTMLResponse(_static("dashboard.html"), headers={"Cache-Control": "no-store"})

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response(status_code=404)
        return Response(_static(name), media_type=_STATIC[name])

    async def current(request: Request) -> Response:
        return JSONResponse(snapshot(state))

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[dict[str, Any]]:
            last = 0.0
            while not state.closing:
                wait_s = min_interval_s - (time.monotonic() - last)
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                last = time.monotonic()
                yield {"event": "snapshot", "data": json.dumps(snapshot(state), default=str)}
                await state.changed.wait(1.0)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    async def root(request: Request) -> Response:
        return RedirectResponse("/dashboard")

    return [
        Route("/", root, methods=["GET"]),
        Route("/dashboard", page, methods=["GET"]),
        Route("/dashboard/state", current, methods=["GET"]),
        Route("/dashboard/events", events, methods=["GET"]),
        Route("/dashboard/static/{name}", asset, methods=["GET"]),
    ]
