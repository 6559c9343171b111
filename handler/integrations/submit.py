"""Submit a job at most once per client key, and follow it to its result (async core).

Used by the FastAPI router (directly) and by the Celery tasks (in each worker process's loop).

Which /run failures may be retried (the request certainly created no job):
- 429: the endpoint's rate limiter refused it;
- a connection that could not be opened (the request was never sent);
- a 5xx reply, only if `retry_run_on_server_error` (off by default: RunPod does not say that a 5xx
  means no job was created, and a gateway error can follow an accepted one).
Anything else that may have reached the endpoint (5xx, timeout, a connection dropped after sending)
is *ambiguous*: a job may exist. The key is then marked `ambiguous` and not submitted again
(unless `on_ambiguous="resubmit"`); with webhooks on, the job's webhook (it carries the key and
its token) attaches the job and its result when it ends, so the result still arrives once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import quote

import httpx
from loguru import logger
from podfleet.api import (
    ApiConnectionError,
    ApiError,
    EndpointClient,
    JobNotFound,
    JobState,
    Policy,
    RateLimited,
    RetryPolicy,
    ServerError,
)
from podfleet.integrations.config import CallerConfig, check_key
from podfleet.integrations.ledger import Ledger, Record

__all__ = [
    "WEBHOOK_PATH",
    "Outcome",
    "Submitter",
    "TransientSubmitError",
    "job_result",
    "webhook_url",
]

WEBHOOK_PATH = "/webhooks/runpod/{key}"

OutcomeKind = Literal["submitted", "existing", "busy", "ambiguous", "rejected", "cancelled"]


class TransientSubmitError(Exception):
    """/run kept being refused (rate limits, connection refused): try again later."""


@dataclass(frozen=True)
class Outcome:
    """What one submission attempt came to."""

    kind: OutcomeKind
    key: str
    job_id: str | None = None
    retry_in_s: float = 0.0  # busy: another submitter holds the key this much longer
    error: str | None = None
    state: str | None = None  # the record's state (existing)

    @property
    def has_job(self) -> bool:
        return self.job_id is not None


def webhook_url(base_url: str, key: str, token: str) -> str:
    return f"{base_url}{WEBHOOK_PATH.format(key=quote(key, safe=''))}?token={token}"


def job_result(state: JobState) -> dict[str, Any]:
    """What the ledger keeps of a final job."""
    return {
        "output": state.output,
        "error": state.error,
        "delay_time_ms": state.delay_time_ms,
        "execution_time_ms": state.execution_time_ms,
        "worker_id": state.worker_id,
    }


def _definitely_not_sent(exc: ApiError) -> bool:
    """An ApiConnectionError whose cause was a failed connect: the request never left."""
    cause = exc.__context__
    return isinstance(exc, ApiConnectionError) and isinstance(
        cause, httpx.ConnectError | httpx.ConnectTimeout
    )


class Submitter:
    """Submission and status for one endpoint: a /run client (no retries of its own), a read
    client (status, cancel, health), and the ledger. Build one per event loop."""

    def __init__(
        self,
        config: CallerConfig,
        *,
        ledger: Ledger | None = None,
        client: EndpointClient | None = None,
        run_client: EndpointClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        extra = {"transport": transport} if transport is not None else {}
        self.config = config
        self.ledger = ledger or Ledger(
            config.redis_url,
            prefix=config.key_prefix,
            record_ttl_s=config.record_ttl_s,
            result_expires_s=config.result_expires_s,
        )
        self.client = client or config.client(**extra)
        self.run_client = run_client or config.run_client(**extra)
        self._backoff = RetryPolicy(max_retries=config.run_retries)

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.run_client.aclose()
        await self.ledger.aclose()

    async def __aenter__(self) -> Submitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- submission -----------------------------------------------------------------------
    async def submit(
        self, key: str, payload: Any, *, policy: Policy | None = None, owner: str | None = None
    ) -> Outcome:
        """Submit `payload` under `key` unless the key already has (or may have) a job.

        Raises TransientSubmitError when /run was refused run_retries+1 times (the claim is
        given back, so a later attempt with the same key submits)."""
        check_key(key, "key")
        if payload is None or payload == {} or payload == []:
            raise ValueError("input: must not be empty (RunPod never dispatches an empty input)")
        cfg = self.config
        owner = owner or secrets.token_hex(8)
        claim = await self.ledger.claim(key, owner, cfg.submit_lease_s)
        if claim.result == "stale_sending":
            if cfg.on_ambiguous == "resubmit":
                claim = await self.ledger.claim(key, owner, cfg.submit_lease_s, force=True)
            else:
                msg = (
                    "a previous submitter stopped while its /run was in flight: a job may or may "
                    "not exist; not submitting again (on_ambiguous='fail')"
                )
                await self.ledger.transition(key, "ambiguous", ("pending",), msg)
                return Outcome("ambiguous", key, error=msg)
        if not claim.won:
            return await self._not_won(key, claim.result, claim.lease_left_s)
        return await self._send(key, owner, payload, policy or cfg.policy)

    async def _not_won(self, key: str, state: str, lease_left_s: float) -> Outcome:
        if state == "pending":
            return Outcome("busy", key, retry_in_s=lease_left_s, state=state)
        rec = await self.ledger.get(key)
        job_id = rec.job_id if rec else None
        if state in ("ambiguous", "rejected", "cancelled") and job_id is None:
            return Outcome(state, key, error=rec.error if rec else None, state=state)  # type: ignore[arg-type]
        return Outcome("existing", key, job_id=job_id, state=state)

    async def _send(self, key: str, owner: str, payload: Any, policy: Policy | None) -> Outcome:
        cfg = self.config
        last: ApiError | None = None
        for attempt in range(cfg.run_retries + 1):
            rec = await self.ledger.get(key)
            if rec is not None and rec.cancel_requested:
                await self.ledger.transition(key, "cancelled", ("pending",), "cancelled by caller")
                return Outcome("cancelled", key, error="cancelled before it was submitted")
            token = secrets.token_urlsafe(24) if cfg.webhook_base_url else None
            if not await self.ledger.mark_sending(key, owner, cfg.submit_lease_s, token):
                return Outcome("busy", key, retry_in_s=cfg.submit_lease_s, state="pending")
            base = cfg.webhook_base_url
            hook = webhook_url(base, key, token) if token and base else None
            try:
                state = await self.run_client.run(payload, policy=policy, webhook=hook)
            except ApiError as exc:
                last = exc
                retry = isinstance(exc, RateLimited) or _definitely_not_sent(exc)
                retry |= isinstance(exc, ServerError) and cfg.retry_run_on_server_error
                if retry:
                    await self.ledger.mark_unsent(key, owner, cfg.submit_lease_s)
                    if attempt < cfg.run_retries:
                        await asyncio.sleep(self._backoff.delay_s(attempt + 1, exc))
                    continue
                if exc.retryable:  # timeout, dropped connection, 5xx taken as ambiguous
                    msg = f"/run outcome unknown ({exc.message}); not submitted again"
                    await self.ledger.transition(key, "ambiguous", ("pending",), msg)
                    logger.warning("submission of key {} is ambiguous: {}", key, exc.message)
                    return Outcome("ambiguous", key, error=msg)
                msg = f"/run refused: {exc.message}"
                await self.ledger.transition(key, "rejected", ("pending",), msg)
                return Outcome("rejected", key, error=msg)
            await self._record(key, owner, state.id)
            rec = await self.ledger.get(key)
            if rec is not None and rec.cancel_requested:  # asked while /run was in flight
                await self.cancel(key)
                return Outcome("submitted", key, job_id=state.id, state="final")
            return Outcome("submitted", key, job_id=state.id, state="submitted")
        await self.ledger.release(key, owner)
        why = last.message if last else ""
        raise TransientSubmitError(f"/run refused {cfg.run_retries + 1} times for key {key}: {why}")

    async def _record(self, key: str, owner: str, job_id: str) -> None:
        """We hold the only copy of the job id: keep trying to record it before returning."""
        for attempt in range(8):
            try:
                await self.ledger.record_job(key, owner, job_id)
                return
            except Exception as exc:  # Redis down: the id must not be lost silently
                logger.error(
                    "job {} for key {} not recorded yet (try {}): {}", job_id, key, attempt + 1, exc
                )
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt))
        logger.error("job {} for key {} could NOT be recorded; recover it by hand", job_id, key)
        raise RuntimeError(f"could not record job {job_id} for key {key}")

    # --- following a job ------------------------------------------------------------------
    async def refresh(self, key: str) -> Record | None:
        """The key's record; a submitted job's live status is read, and recorded if final.
        API errors propagate (the caller decides whether that matters)."""
        rec = await self.ledger.get(key)
        if rec is None or rec.state != "submitted" or rec.job_id is None:
            return rec
        try:
            state = await self.client.status(rec.job_id)
        except JobNotFound:
            result = {"output": None, "error": "job unknown to the endpoint (expired?)"}
            await self.ledger.finish(key, "NOT_FOUND", result, rec.job_id)
            return await self.ledger.get(key)
        if state.terminal:
            await self.ledger.finish(key, str(state.status), job_result(state), rec.job_id)
            return await self.ledger.get(key)
        return _with_status(rec, str(state.status), state.progress)

    async def cancel(self, key: str) -> Record | None:
        """Cancel the key's job; one not submitted yet is marked so it never is."""
        rec = await self.ledger.get(key)
        if rec is None:
            return None
        if rec.job_id is None:
            await self.ledger.request_cancel(key)
            await self.ledger.transition(key, "cancelled", ("queued",), "cancelled by caller")
            return await self.ledger.get(key)
        if rec.state != "final":
            state = await self.client.cancel(rec.job_id)
            if state.terminal:
                await self.ledger.finish(key, str(state.status), job_result(state), rec.job_id)
        return await self.ledger.get(key)

    async def finish_timed_out(self, key: str, job_id: str, waited_s: float) -> None:
        """The wait ran out: cancel the job (if configured) and record why."""
        status = "WAIT_TIMEOUT"
        if self.config.cancel_on_timeout:
            try:
                await self.client.cancel(job_id)
                status = "CANCELLED"
            except ApiError as exc:
                logger.warning("cancel of {} after the wait timed out failed: {}", job_id, exc)
        msg = f"no result within {waited_s:g}s"
        if status == "CANCELLED":
            msg += " (job cancelled)"
        await self.ledger.finish(key, status, {"output": None, "error": msg}, job_id)


def _with_status(rec: Record, status: str, progress: Any) -> Record:
    result = {"progress": progress} if progress is not None else rec.result
    return replace(rec, status=status, result=result, updated_at=time.time())
