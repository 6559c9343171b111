"""The ASGI app: RunPod's client API and worker protocol under /v2/{endpoint_id}/.

Client routes pass through fault injection (latency, 429/5xx) and the optional API key check;
worker routes check the per-run worker key the pool hands its workers (RUNPOD_AI_API_KEY).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from podfleet.emulator.dashboard import dashboard_routes
from podfleet.emulator.jobs import RunRequest
from podfleet.emulator.observe import workers_listing
from podfleet.emulator.state import EndpointState, StateError
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["create_app"]

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "<body>"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "invalid request: " + "; ".join(parts)


def create_app(state: EndpointState, *, on_startup: Callable[[], Awaitable[None]] | None = None):
    """The Starlette app over `state`; `on_startup` runs on the server's loop after start()."""
    cfg = state.config
    rng = random.Random(cfg.faults.seed)

    def authorized(request: Request, key: str | None) -> bool:
        if key is None:
            return True
        got = request.headers.get("authorization", "")
        return got in (key, f"Bearer {key}")

    def client(route: str) -> Callable[[Handler], Handler]:
        def wrap(fn: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                state.requests.record(route)
                if request.path_params["endpoint_id"] != cfg.endpoint_id:
                    return _error(404, f"endpoint {request.path_params['endpoint_id']!r} not found")
                faults = state.faults
                if faults.latency_s:
                    await asyncio.sleep(faults.latency_s)
                if not authorized(request, cfg.api_key):
                    return _error(401, "unauthorized: missing or wrong API key")
                limit = state.requests.over_limit(route) if faults.rate_limits else None
                if limit is not None:
                    return _error(
                        429,
                        f"rate limit: more than {limit} /{route} requests in 10 s",
                        **{"Retry-After": "1"},
                    )
                routes = faults.api_error_routes
                hit = faults.api_error_rate and (routes is None or route in routes)
                if hit and rng.random() < faults.api_error_rate:
                    status = rng.choice(faults.api_error_statuses)
                    extra = {"Retry-After": "1"} if status == 429 else {}
                    return _error(status, f"injected fault on /{route}", **extra)
                try:
                    return await fn(request)
                except StateError as exc:
                    return _error(exc.status, exc.message)

            return endpoint

        return wrap

    def worker(fn: Callable[[Request, Any], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            # the operation is the route's path segment: job-take, job-take-batch, job-done, ...
            state.requests.record(request.url.path.split("/")[3])
            if request.path_params["endpoint_id"] != cfg.endpoint_id:
                return _error(404, "unknown endpoint")
            if not authorized(request, state.worker_key):
                return _error(401, "unauthorized worker")
            gen = request.query_params.get("gen", "")
            w = state.current(request.path_params["worker_id"], int(gen) if gen.isdigit() else None)
            if w is None:
                return Response(status_code=204)  # a stale process: nothing for it
            return await fn(request, w)

        return endpoint

    async def read_run(request: Request, limit: int) -> RunRequest:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise StateError(413, f"payload too large: {declared} bytes > {limit} bytes limit")
        raw = await request.body()
        if len(raw) > limit:
            raise StateError(413, f"payload too large: {len(raw)} bytes > {limit} bytes limit")
        try:
            return RunRequest.model_validate_json(raw or b"null")
        except ValidationError as exc:
            raise StateError(400, _validation_message(exc)) from None

    @client("run")
    async def run(request: Request) -> Response:
        job = state.submit(await read_run(request, cfg.max_payload_bytes), sync=False)
        accepted_error = state.faults.run_accepted_error_rate
        if accepted_error and rng.random() < accepted_error:
            # the job exists and will run, but the caller sees a failure (a retry duplicates it)
            return _error(502, f"injected fault on /run after accepting job {job.id}")
        return JSONResponse({"id": job.id, "status": str(job.status)})

    @client("runsync")
    async def runsync(request: Request) -> Response:
        wait = request.query_params.get("wait", "90000")
        if not wait.isdigit():
            raise StateError(400, f"wait: expected milliseconds, got {wait!r}")
        wait_s = min(int(wait), cfg.max_runsync_wait_ms) / 1000
        job = state.submit(await read_run(request, cfg.max_runsync_payload_bytes), sync=True)
        done = await state.wait_final(job.id, wait_s)
        if done is None:
            raise StateError(404, f"job {job.id} expired")
        body = (
            done.status_body()
            if done.status.is_final()
            else {"id": job.id, "status": str(done.status)}
        )
        return JSONResponse(body)

    @client("status")
    async def status(request: Request) -> Response:
        return JSONResponse(state.get(request.path_params["job_id"]).status_body())

    @client("stream")
    async def stream(request: Request) -> Response:
        return JSONResponse(
            await state.stream(request.path_params["job_id"], cfg.stream_long_poll_s)
        )

    @client("cancel")
    async def cancel(request: Request) -> Response:
        return JSONResponse(state.cancel(request.path_params["job_id"]))

    @client("retry")
    async def retry(request: Request) -> Response:
        return JSONResponse(state.retry(request.path_params["job_id"]))

    @client("purge-queue")
    async def purge(request: Request) -> Response:
        return JSONResponse({"removed": state.purge(), "status": "completed"})

    @client("health")
    async def health(request: Request) -> Response:
        return JSONResponse(state.health())

    @client("workers")
    async def workers(request: Request) -> Response:
        """RunPod's REST v2 listing (GET /v2/serverless/{id}/workers)."""
        return JSONResponse(workers_listing(state))

    async def until_disconnect(request: Request) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    async def held(request: Request, work: Awaitable[Any]) -> Any:
        """Run a long-poll; drop it if the worker hangs up (a killed process takes no job)."""
        task = asyncio.ensure_future(work)
        gone = asyncio.ensure_future(until_disconnect(request))
        try:
            await asyncio.wait([task, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            return None
        return task.result()

    @worker
    async def job_take(request: Request, w: Any) -> Response:
        batch = "batch_size" in request.query_params
        size = request.query_params.get("batch_size", "1")
        n = max(1, int(size)) if size.isdigit() else 1
        jobs = await held(request, state.take(w, n, cfg.take_long_poll_s))
        if not jobs:
            return Response(status_code=204)
        return JSONResponse(jobs if batch else jobs[0])

    @worker
    async def job_stop(request: Request, w: Any) -> Response:
        ids = await held(request, state.stop_signals(w, cfg.take_long_poll_s))
        if not ids:
            return Response(status_code=204)
        return JSONResponse({"jobsToStop": ids})

    @worker
    async def job_done(request: Request, w: Any) -> Response:
        code, body = state.post_done(w, request.path_params["job_id"], await request.body())
        return JSONResponse(body, status_code=code)

    @worker
    async def job_stream(request: Request, w: Any) -> Response:
        raw = await request.body()
        body = None
        if len(raw) <= cfg.max_stream_chunk_bytes:  # an oversized one is refused unread
            try:
                body = json.loads(raw)
            except ValueError as exc:
                return _error(400, f"unreadable stream chunk: {exc}")
        code, reply = state.post_stream(w, request.path_params["job_id"], body, len(raw))
        return JSONResponse(reply, status_code=code)

    @worker
    async def ping(request: Request, w: Any) -> Response:
        ids = request.query_params.get("job_id") or ""
        state.ping(w, [i for i in ids.split(",") if i])
        return JSONResponse({"ok": True})

    base = "/v2/{endpoint_id}"
    routes = [
        *dashboard_routes(state),
        Route("/v2/serverless/{endpoint_id}/workers", workers, methods=["GET"]),
        Route(f"{base}/run", run, methods=["POST"]),
        Route(f"{base}/runsync", runsync, methods=["POST"]),
        Route(f"{base}/status/{{job_id}}", status, methods=["GET", "POST"]),
        Route(f"{base}/stream/{{job_id}}", stream, methods=["GET", "POST"]),
        Route(f"{base}/cancel/{{job_id}}", cancel, methods=["POST"]),
        Route(f"{base}/retry/{{job_id}}", retry, methods=["POST"]),
        Route(f"{base}/purge-queue", purge, methods=["POST"]),
        Route(f"{base}/health", health, methods=["GET"]),
        Route(f"{base}/job-take/{{worker_id}}", job_take, methods=["GET"]),
        Route(f"{base}/job-take-batch/{{worker_id}}", job_take, methods=["GET"]),
        Route(f"{base}/job-stop/{{worker_id}}", job_stop, methods=["GET"]),
        Route(f"{base}/job-done/{{worker_id}}/{{job_id}}", job_done, methods=["POST"]),
        Route(f"{base}/job-stream/{{worker_id}}/{{job_id}}", job_stream, methods=["POST"]),
        Route(f"{base}/ping/{{worker_id}}", ping, methods=["GET"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if state.loop is None:
            state.start()
        if on_startup is not None:
            await on_startup()
        yield

    return Starlette(routes=routes, lifespan=lifespan)
