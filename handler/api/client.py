"""Async client of a RunPod serverless endpoint's public API (runpod-protocol.md §3).

One `httpx.AsyncClient` per instance, with an injectable transport (`httpx.MockTransport`,
`httpx.ASGITransport`), client-side rate limits per operation, retries with jittered exponential
backoff on 429/5xx/connection errors, typed results and typed errors (`podfleet.api.errors`).
The API key is sent as `Authorization: Bearer`; it never appears in `repr`, logs or errors.

Retrying `/run` after a 5xx can submit a job twice (the server may have accepted the first);
callers that care pass an idempotency key in the input and ignore duplicate results.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import httpx
from podfleet.api.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    JobNotFound,
    ServerError,
    error_for_status,
)
from podfleet.api.models import Health, JobState, JobStatus, Policy, WorkersListing
from podfleet.api.ratelimit import RateLimits
from podfleet.api.retry import RetryPolicy, call_with_retries
from podfleet.settings import Settings
from pydantic import SecretStr

__all__ = ["EndpointClient", "UpdateCallback", "rest_base_for"]

RUNPOD_SERVERLESS_BASE = "https://api.runpod.ai/v2"
RUNPOD_REST_BASE = "https://api.runpod.io/v2"


def rest_base_for(base_url: str) -> str:
    """Where the REST v2 API lives: api.runpod.io for RunPod's queue API, else the same server
    (the emulator serves /v2/serverless/{id}/workers next to /v2/{id}/run)."""
    base = base_url.rstrip("/")
    return RUNPOD_REST_BASE if base == RUNPOD_SERVERLESS_BASE else base


UpdateCallback = Callable[[JobState], Awaitable[None] | None]


class EndpointClient:
    """The endpoint API, async. Use as `async with EndpointClient.from_settings(s) as client:`."""

    def __init__(
        self,
        *,
        endpoint_id: str,
        base_url: str = "https://api.runpod.ai/v2",
        api_key: str | SecretStr | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        limits: RateLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        wait_timeout_s: float = 300.0,
        wait_interval_s: float = 5.0,
        status_concurrency: int = 32,
        rest_base_url: str | None = None,
        retry_connect: bool = True,
    ):
        if not endpoint_id:
            raise ValueError("endpoint_id is required (RUNPOD_ENDPOINT_ID)")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.endpoint_id = endpoint_id
        self.base_url = base_url.rstrip("/")
        self.rest_base_url = (rest_base_url or rest_base_for(self.base_url)).rstrip("/")
        self.retry_policy = retry or RetryPolicy()
        self.limits = limits or RateLimits()
        self.wait_timeout_s = wait_timeout_s
        self.wait_interval_s = wait_interval_s
        self.status_concurrency = status_concurrency
        self.retry_connect = retry_connect  # False: a refused connection fails at once (CLI)
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/{endpoint_id}",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EndpointClient:
        kw: dict[str, Any] = {
            "endpoint_id": settings.runpod_endpoint_id or "",
            "base_url": settings.runpod_endpoint_base_url,
            "api_key": settings.runpod_api_key,
            "timeout_s": settings.api_timeout_s,
            "retry": RetryPolicy(max_retries=settings.api_max_retries),
            "wait_timeout_s": settings.wait_timeout_s,
            "wait_interval_s": settings.wait_interval_s,
        }
        kw.update(overrides)
        return cls(**kw)

    def __repr__(self) -> str:
        return f"EndpointClient(endpoint_id={self.endpoint_id!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> EndpointClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- one request ----------------------------------------------------------------------
    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        url: str | None = None,
    ) -> dict[str, Any]:
        async def send() -> dict[str, Any]:
            async with self.limits.slot(operation):
                try:
                    resp = await self._http.request(
                        method,
                        url or path,
                        json=body,
                        params=params,
                        timeout=timeout_s or self.timeout_s,
                    )
                except httpx.TimeoutException as exc:
                    raise ApiTimeout(
                        f"{operation}: request timed out ({type(exc).__name__})",
                        operation=operation,
                    ) from None
                except httpx.TransportError as exc:
                    err = ApiConnectionError(
                        f"{operation}: cannot reach {self.base_url}: {type(exc).__name__}: {exc}",
                        operation=operation,
                    )
                    if isinstance(exc, httpx.ConnectError) and not self.retry_connect:
                        err.retryable = False  # nothing listens there: say so at once
                    raise err from None
            if resp.status_code >= 400:
                raise error_for_status(
                    resp.status_code, operation, resp.text, resp.headers.get("Retry-After")
                )
            try:
                data = resp.json()
            except ValueError:
                raise ServerError(
                    f"{operation}: HTTP {resp.status_code} with a body that is not JSON",
                    status_code=resp.status_code,
                    operation=operation,
                ) from None
            if not isinstance(data, dict):
                raise ServerError(
                    f"{operation}: expected a JSON object, got {type(data).__name__}",
                    status_code=resp.status_code,
                    operation=operation,
                )
            return data

        return await call_with_retries(self.retry_policy, operation, send)

    @staticmethod
    def _job_body(payload: Any, policy: Policy | None, webhook: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"input": payload}
        if policy is not None and (wire := policy.to_wire()):
            body["policy"] = wire
        if webhook:
            body["webhook"] = webhook
        return body

    # --- operations -----------------------------------------------------------------------
    async def run(
        self, payload: Any, *, policy: Policy | None = None, webhook: str | None = None
    ) -> JobState:
        """Queue a job (`payload` is what the handler sees as job["input"])."""
        data = await self._request(
            "run", "POST", "/run", body=self._job_body(payload, policy, webhook)
        )
        return JobState.from_wire(data)

    async def runsync(
        self,
        payload: Any,
        *,
        wait_s: float = 90.0,
        policy: Policy | None = None,
        webhook: str | None = None,
    ) -> JobState:
        """Run and wait up to `wait_s` on the server; a non-terminal state means it ran out."""
        data = await self._request(
            "runsync",
            "POST",
            "/runsync",
            body=self._job_body(payload, policy, webhook),
            params={"wait": int(wait_s * 1000)},
            timeout_s=wait_s + self.timeout_s,
        )
        return JobState.from_wire(data)

    async def status(self, job_id: str) -> JobState:
        return JobState.from_wire(await self._request("status", "GET", f"/status/{job_id}"), job_id)

    async def status_many(
        self, job_ids: Sequence[str], *, concurrency: int | None = None
    ) -> dict[str, JobState | None]:
        """Status of many jobs (there is no batch endpoint): bounded concurrency, paced by the
        rate limiter. A job the API does not know (404: unknown or expired) maps to None; other
        errors propagate after their retries."""
        sem = asyncio.Semaphore(concurrency or self.status_concurrency)

        async def one(job_id: str) -> JobState | None:
            async with sem:
                try:
                    return await self.status(job_id)
                except JobNotFound:
                    return None

        states = await asyncio.gather(*(one(j) for j in job_ids))
        return dict(zip(job_ids, states, strict=True))

    async def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        interval_s: float | None = None,
        on_update: UpdateCallback | None = None,
    ) -> JobState:
        """Poll until the job is terminal. Polls start fast and back off to `interval_s`.
        Raises ApiTimeout (with `.last_state`) after `timeout_s`, JobNotFound on 404."""
        timeout_s = self.wait_timeout_s if timeout_s is None else timeout_s
        interval_s = self.wait_interval_s if interval_s is None else interval_s
        deadline = time.monotonic() + timeout_s
        delay_s = min(0.25, interval_s)
        state: JobState | None = None
        while True:
            state = await self.status(job_id)
            if on_update is not None:
                maybe = on_update(state)
                if inspect.isawaitable(maybe):
                    await maybe
            if state.terminal:
                return state
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise ApiTimeout(
                    f"wait: job {job_id} still {state.status} after {timeout_s:g}s",
                    operation="wait",
                    last_state=state,
                )
            await asyncio.sleep(min(delay_s, left_s))
            delay_s = min(interval_s, delay_s * 1.5)

    async def stream(
        self, job_id: str, *, interval_s: float = 0.5, timeout_s: float | None = None
    ) -> AsyncIterator[Any]:
        """Yield a generator job's chunks in order until the job is terminal."""
        timeout_s = self.wait_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            data = await self._request("stream", "GET", f"/stream/{job_id}")
            chunks = data.get("stream") or []
            for chunk in chunks:
                yield chunk.get("output") if isinstance(chunk, dict) else chunk
            if JobStatus.parse(data.get("status")).is_terminal():
                return
            if time.monotonic() >= deadline:
                raise ApiTimeout(f"stream: job {job_id} not finished after {timeout_s:g}s")
            if not chunks:
                await asyncio.sleep(interval_s)

    async def cancel(self, job_id: str) -> JobState:
        return JobState.from_wire(
            await self._request("cancel", "POST", f"/cancel/{job_id}"), job_id
        )

    async def retry(self, job_id: str) -> JobState:
        """Re-queue a FAILED or TIMED_OUT job under the same id."""
        return JobState.from_wire(await self._request("retry", "POST", f"/retry/{job_id}"), job_id)

    async def purge_queue(self) -> int:
        """Remove every queued job; returns how many."""
        data = await self._request("purge_queue", "POST", "/purge-queue")
        return int(data.get("removed") or 0)

    async def health(self) -> Health:
        return Health.from_wire(await self._request("health", "GET", "/health"))

    async def workers(self) -> WorkersListing:
        """Per-worker state: RunPod's REST v2 `GET /v2/serverless/{id}/workers` (on
        api.runpod.io for a real endpoint; on the same server for the emulator)."""
        url = f"{self.rest_base_url}/serverless/{self.endpoint_id}/workers"
        return WorkersListing.from_wire(await self._request("workers", "GET", "", url=url))

    async def submit_many(
        self,
        payloads: Sequence[Any],
        *,
        concurrency: int = 32,
        policy: Policy | None = None,
        webhook: str | None = None,
    ) -> list[JobState | ApiError]:
        """Queue many jobs with bounded concurrency; results in input order. A submission that
        failed for good is its ApiError in that slot (the others are not abandoned)."""
        sem = asyncio.Semaphore(concurrency)

        async def one(payload: Any) -> JobState | ApiError:
            async with sem:
                try:
                    return await self.run(payload, policy=policy, webhook=webhook)
                except ApiError as exc:
                    return exc

        return list(await asyncio.gather(*(one(p) for p in payloads)))
