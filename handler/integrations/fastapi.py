"""FastAPI routes in front of a podfleet (RunPod) endpoint: submit, batch, status, cancel, health,
connection test and the completion-webhook receiver.

    api = CallerAPI(config, celery_app=celery_app)   # celery_app=None: submit from this process
    app = FastAPI(lifespan=api.lifespan); app.include_router(api.router, prefix="/podfleet")
    # or: app = create_app(config, celery_app=celery_app)

One EndpointClient (and one ledger connection pool) per app lifespan. A submission answers
`202 Accepted` with its key (and the RunPod job id once known); `GET /jobs/{key}` follows it. With
a Celery app, submissions are Celery tasks (`podfleet.submit`, sent by name) and `/health` adds the
Celery queue lengths. Every job submitted with `webhook_base_url` set carries its own secret token
in its webhook URL; the receiver accepts a completion only with that key's token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, FastAPI, Header, HTTPException, Query, Request, Response
from loguru import logger
from podfleet.api import ApiError, JobState
from podfleet.integrations.config import CallerConfig, check_key
from podfleet.integrations.ledger import Record
from podfleet.integrations.models import (
    BatchRequest,
    BatchView,
    CheckView,
    ConnectionView,
    HealthView,
    JobRequest,
    JobView,
    WebhookReceipt,
)
from podfleet.integrations.submit import (
    WEBHOOK_PATH,
    Submitter,
    TransientSubmitError,
    job_result,
)

__all__ = ["CallerAPI", "RedactTokens", "create_app"]

_TOKEN = re.compile(r"(token=)[^&\s\"']+")
_MAX_WEBHOOK_BYTES = 25_000_000  # RunPod results are at most 20 MB


class RedactTokens(logging.Filter):
    """Keeps webhook tokens out of access logs (uvicorn logs every request's query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class CallerAPI:
    """The routes (`router`) and the lifespan that owns their client (`lifespan`)."""

    def __init__(
        self,
        config: CallerConfig,
        *,
        celery_app: Any = None,
        prefix: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.celery_app = celery_app
        self.prefix = prefix.rstrip("/")
        self._transport = transport
        self._submitter: Submitter | None = None
        self.router = APIRouter(tags=["podfleet"])
        self._routes()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, RedactTokens) for f in access.filters):
            access.addFilter(RedactTokens())
        self._submitter = Submitter(self.config, transport=self._transport)
        try:
            yield
        finally:
            await self._submitter.aclose()
            self._submitter = None

    @property
    def submitter(self) -> Submitter:
        if self._submitter is None:
            raise RuntimeError("CallerAPI used outside FastAPI(lifespan=api.lifespan)")
        return self._submitter

    # --- helpers --------------------------------------------------------------------------
    def _view(self, rec: Record) -> JobView:
        return JobView.from_record(rec, self.prefix)

    async def _send_task(self, name: str, kwargs: dict[str, Any], task_id: str, high: bool) -> None:
        cfg = self.config
        queue = cfg.high_priority_queue if high else cfg.queue

        def send() -> None:
            self.celery_app.send_task(name, kwargs=kwargs, task_id=task_id, queue=queue)

        await anyio.to_thread.run_sync(send)

    async def _current(self, key: str, refresh: bool) -> Record | None:
        """The record; a running job's live status too when `refresh` (errors: ledger only)."""
        if not refresh:
            return await self.submitter.ledger.get(key)
        try:
            return await self.submitter.refresh(key)
        except ApiError as exc:
            logger.warning("status of key {} not refreshed: {}", key, exc.message)
            return await self.submitter.ledger.get(key)

    async def _await_final(self, key: str, wait_s: float) -> Record | None:
        deadline = time.monotonic() + wait_s
        delay_s = 0.1
        while True:
            rec = await self._current(key, refresh=self.celery_app is None)
            done = rec is not None and self._view(rec).done
            if done or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(min(delay_s, max(0.0, deadline - time.monotonic())))
            delay_s = min(1.0, delay_s * 1.5)

    async def _submit_one(self, key: str, req: JobRequest | BatchRequest, payload: Any) -> None:
        """Submit (direct) or enqueue (Celery) one key; idempotent per key."""
        policy = req.policy.model_dump(exclude_none=True) if req.policy else None
        if self.celery_app is None:
            out = await self.submitter.submit(key, payload, policy=req.policy)
            if out.kind == "rejected":
                raise HTTPException(422, detail=out.error)
            return
        await self.submitter.ledger.enqueue(key)
        rec = await self.submitter.ledger.get(key)
        if rec is not None and rec.state == "queued":  # (re)send: the task's claim dedups
            kwargs = {"payload": payload, "key": key, "policy": policy, "priority": req.priority}
            await self._send_task("podfleet.submit", kwargs, f"podfleet-submit:{key}", _high(req))

    # --- the operations (also for your own routes: `await api.submit_job(JobRequest(...))`) ----
    async def submit_job(
        self, req: JobRequest, *, key: str | None = None, wait_s: float = 0
    ) -> JobView:
        """Submit (or find) the request's job; waits up to `wait_s` for it to end."""
        key = check_key(key or req.idempotency_key or secrets.token_hex(12))
        try:
            await self._submit_one(key, req, req.input)
        except TransientSubmitError as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
        rec = await self._await_final(key, wait_s)
        if rec is None:
            raise HTTPException(500, f"key {key}: no record after submission")
        return self._view(rec)

    async def submit_batch(self, req: BatchRequest) -> BatchView:
        key = check_key(req.idempotency_key or secrets.token_hex(12))
        keys = [f"{key}:{i}" for i in range(len(req.inputs))]
        ledger = self.submitter.ledger
        if not await ledger.set_batch(key, keys) and await ledger.get_batch(key) != keys:
            raise HTTPException(409, f"idempotency_key: batch {key} exists with other inputs")
        if self.celery_app is not None:
            for k in keys:
                await ledger.enqueue(k)
            policy = req.policy.model_dump(exclude_none=True) if req.policy else None
            kwargs = {"payloads": req.inputs, "key": key, "policy": policy}
            kwargs["priority"] = req.priority
            await self._send_task("podfleet.batch", kwargs, f"podfleet-batch:{key}", _high(req))
        else:
            sem = asyncio.Semaphore(self.config.batch_concurrency)

            async def one(k: str, payload: Any) -> None:
                async with sem:
                    try:
                        await self._submit_one(k, req, payload)
                    except (TransientSubmitError, HTTPException) as exc:
                        logger.warning("batch item {} not submitted: {}", k, exc)

            await asyncio.gather(*(one(k, p) for k, p in zip(keys, req.inputs, strict=True)))
        return await self.batch_status(key, refresh=False)

    async def batch_status(self, key: str, *, refresh: bool | None = None) -> BatchView:
        keys = await self.submitter.ledger.get_batch(key)
        if keys is None:
            raise HTTPException(404, f"batch {key!r} unknown (or expired)")
        recs = await self.submitter.ledger.get_many(keys)
        if self.celery_app is None if refresh is None else refresh:
            sem = asyncio.Semaphore(self.config.batch_concurrency)

            async def live(rec: Record | None) -> Record | None:
                if rec is None or rec.state != "submitted":
                    return rec
                async with sem:
                    return await self._current(rec.key, refresh=True)

            recs = list(await asyncio.gather(*(live(x) for x in recs)))
        views = [
            self._view(rec or Record(key=k, state="unknown"))
            for k, rec in zip(keys, recs, strict=True)
        ]
        states: dict[str, int] = {}
        for v in views:
            states[v.state] = states.get(v.state, 0) + 1
        return BatchView(key=key, total=len(views), states=states, jobs=views)

    async def job_status(self, key: str, *, refresh: bool = True) -> JobView:
        rec = await self._current(key, refresh)
        if rec is None:
            raise HTTPException(404, f"job {key!r} unknown (or its result expired)")
        return self._view(rec)

    async def cancel_job(self, key: str) -> JobView:
        try:
            rec = await self.submitter.cancel(key)
        except ApiError as exc:
            raise HTTPException(502, f"cancel failed: {exc.message}") from None
        if rec is None:
            raise HTTPException(404, f"job {key!r} unknown (or its result expired)")
        return self._view(rec)

    # --- routes ---------------------------------------------------------------------------
    def _routes(self) -> None:
        r = self.router

        @r.post("/jobs", status_code=202, response_model=JobView, summary="Submit one job")
        async def submit(
            req: JobRequest,
            response: Response,
            idempotency_key: str | None = Header(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
            wait_s: float = Query(0, ge=0, le=60, description="Wait this long for the result."),
        ) -> JobView:
            """202 with the key (and job id once known); 200 if it ended within `wait_s`.
            The same idempotency key (body or `Idempotency-Key` header) never submits twice."""
            view = await self.submit_job(req, key=idempotency_key, wait_s=wait_s)
            if view.done:
                response.status_code = 200
            return view

        @r.post("/jobs/batch", status_code=202, response_model=BatchView, summary="Submit many")
        async def submit_batch(req: BatchRequest) -> BatchView:
            """One job per input, at most `batch_concurrency` submissions in flight (direct) or
            one `podfleet.batch` Celery task. Item i has the key `{key}:{i}`."""
            return await self.submit_batch(req)

        @r.get("/batches/{key}", response_model=BatchView, summary="Status of a batch")
        async def batch_status(key: str, refresh: bool | None = Query(None)) -> BatchView:
            """Every item's state; `refresh` (default: without Celery) reads running jobs' live
            status (bounded concurrency)."""
            return await self.batch_status(key, refresh=refresh)

        @r.get("/jobs/{key}", response_model=JobView, summary="Status of a job")
        async def status(key: str, refresh: bool | None = Query(None)) -> JobView:
            """The ledger's record. `refresh` reads a running job's live status (and progress)
            from the endpoint; default: yes without Celery, no with it (its wait task keeps the
            record current, so clients polling this app do not multiply /status calls)."""
            live = self.celery_app is None if refresh is None else refresh
            return await self.job_status(key, refresh=live)

        @r.post("/jobs/{key}/cancel", response_model=JobView, summary="Cancel a job")
        async def cancel(key: str) -> JobView:
            """Cancels the endpoint's job; one not submitted yet never will be."""
            return await self.cancel_job(key)

        @r.get("/health", response_model=HealthView, summary="Endpoint health and queue stats")
        async def health() -> HealthView:
            view = HealthView(ok=True)
            try:
                h = await self.submitter.client.health()
                view.endpoint = {"jobs": h.jobs, "workers": h.workers}
            except ApiError as exc:
                view.ok, view.endpoint_error = False, exc.message
            if self.celery_app is not None:
                from podfleet.integrations.celery import queue_lengths

                names = [self.config.high_priority_queue, self.config.queue]
                try:
                    view.celery_queues = await anyio.to_thread.run_sync(
                        queue_lengths, self.celery_app, names
                    )
                except Exception as exc:  # a broker that is down is a health finding
                    view.ok, view.celery_error = False, f"{type(exc).__name__}: {exc}"
            return view

        @r.get("/connection-test", response_model=ConnectionView, summary="Connection test")
        async def connection_test(
            timeout_s: float = Query(10, gt=0, le=60, description="Celery round trip budget."),
        ) -> ConnectionView:
            """Reaches the endpoint (/health), the ledger's Redis and, with Celery, a worker
            (the `podfleet.test_connection` task)."""
            endpoint = await _timed(self.submitter.client.health())
            ledger = await _timed(self.submitter.ledger.ping())
            celery = None
            if self.celery_app is not None:

                def roundtrip() -> dict[str, Any]:
                    res = self.celery_app.send_task(
                        "podfleet.test_connection", queue=self.config.high_priority_queue
                    )
                    return res.get(timeout=timeout_s)

                celery = await _timed(anyio.to_thread.run_sync(roundtrip))
            ok = endpoint.ok and ledger.ok and (celery is None or celery.ok)
            return ConnectionView(ok=ok, endpoint=endpoint, ledger=ledger, celery=celery)

        @r.post(WEBHOOK_PATH, response_model=WebhookReceipt, summary="RunPod completion webhook")
        async def webhook(key: str, request: Request, token: str = Query("")) -> WebhookReceipt:
            """RunPod POSTs the job's final status here. Only the key's own token is accepted;
            the result is recorded (and a job id the ledger did not know is attached)."""
            rec = await self.submitter.ledger.get(key)
            if rec is None or not token or not rec.accepts_token(token):
                raise HTTPException(401, "unknown job or wrong token")
            size = request.headers.get("content-length", "")
            if size.isdigit() and int(size) > _MAX_WEBHOOK_BYTES:
                raise HTTPException(413, f"body: over {_MAX_WEBHOOK_BYTES} bytes")
            try:
                body = await request.json()
                state = JobState.from_wire(body if isinstance(body, dict) else {})
            except ValueError:
                raise HTTPException(400, "body: expected the job's status as JSON") from None
            if not state.terminal or not state.id:
                return WebhookReceipt(key=key, recorded="ignored")
            res = await self.submitter.ledger.finish(
                key, str(state.status), job_result(state), state.id
            )
            if res == "duplicate":
                logger.warning("key {}: webhook for a second job {} (duplicate)", key, state.id)
            return WebhookReceipt(key=key, recorded=res)


def _high(req: JobRequest | BatchRequest) -> bool:
    return req.priority == "high"


async def _timed(awaitable: Any) -> CheckView:
    t0 = time.perf_counter()
    try:
        result = await awaitable
    except Exception as exc:
        msg = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
        return CheckView(ok=False, error=msg)
    ms = round((time.perf_counter() - t0) * 1000, 1)
    if isinstance(result, dict) and result.get("ok") is False:
        return CheckView(ok=False, latency_ms=ms, error=str(result.get("error")))
    return CheckView(ok=True, latency_ms=ms)


def create_app(
    config: CallerConfig,
    *,
    celery_app: Any = None,
    prefix: str = "",
    title: str = "podfleet caller",
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """A FastAPI app with the routes under `prefix`; OpenAPI docs at /docs."""
    api = CallerAPI(config, celery_app=celery_app, prefix=prefix, transport=transport)
    app = FastAPI(title=title, lifespan=api.lifespan)
    app.include_router(api.router, prefix=api.prefix)
    app.state.podfleet = api
    return app
