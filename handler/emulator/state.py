"""The emulated endpoint's state: job table, two-level queue, workers, timers. One event loop.

Every method runs on the emulator's event loop (the ASGI app and the pool call it there; the
out-of-process `Emulator` hops onto that loop). Waiting is done with `Pulse`s and loop timers
(`call_later` for executionTimeout, ttl, retention): nothing polls.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from loguru import logger
from podfleet.emulator.accounting import Accounting
from podfleet.emulator.config import EmulatorConfig
from podfleet.emulator.jobs import FINAL, JobRecord, JobStatus, RunRequest
from podfleet.emulator.logfmt import event_line
from podfleet.emulator.protocol import WorkerProtocol
from podfleet.emulator.requests import RequestCounter
from podfleet.emulator.workers import Pulse, WorkerInfo

__all__ = ["EndpointState", "StateError", "is_loopback_url"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class StateError(Exception):
    """A client mistake: becomes an HTTP error with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in _LOOPBACK


class EndpointState(WorkerProtocol, Accounting):
    """The endpoint: its client API here, the worker side in `WorkerProtocol`."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.worker_key = secrets.token_hex(16)
        self.jobs: dict[str, JobRecord] = {}
        self.queue: deque[str] = deque()
        self.queue_low: deque[str] = deque()
        self.workers: dict[str, WorkerInfo] = {}
        self.counters = {"completed": 0, "failed": 0, "retried": 0, "cancelled": 0, "expired": 0}
        self.work = Pulse()  # a job was queued, or a worker may take again
        self.changed = Pulse()  # any job changed (wait_idle, wait_until, runsync, stream)
        self.closing = False
        self.on_lost: Callable[[str], None] | None = None  # the pool kills a lost worker
        self.on_refresh: Callable[[str], None] | None = None  # stopPod: the pool restarts it
        self._webhooks: set[asyncio.Task[None]] = set()
        self._tick: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: deque[tuple[float, str, str, str | None]] = deque(maxlen=100_000)
        self.errors: deque[dict[str, Any]] = deque(maxlen=50)  # recent, for the dashboard
        self.parked: set[str] = set()  # empty-input jobs: RunPod never dispatches them
        self.version = 1  # the endpoint's release; `release()` makes older workers stale
        self.started_at = time.monotonic()
        self.on_log: Callable[[str], None] | None = None  # one line per queue event (CLI)
        self.requests = RequestCounter()  # per-operation request counts (request_stats)

    def log(self, source: str, level: str, message: str, job_id: str | None = None) -> None:
        if self.on_log is not None:
            self.on_log(event_line(source, level, message, job_id))

    def event(self, kind: str, worker_id: str, job_id: str | None = None) -> None:
        """A timeline (monotonic s, kind, worker, job) for benchmarks: take, assign, done."""
        self.events.append((time.monotonic(), kind, worker_id, job_id))

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Bind to the running loop; start the lost-worker watch."""
        self.loop = asyncio.get_running_loop()
        self.faults._on_change = lambda: self.loop.call_soon_threadsafe(self._faults_changed)
        interval_s = max(0.25, min(1.0, self.config.lost_after_s / 4))
        self._tick = asyncio.create_task(self._watch_lost(interval_s))

    def close(self) -> None:
        """Answer every held long-poll at once; take no more work."""
        self.closing = True
        self.faults._on_change = None
        if self._tick:
            self._tick.cancel()
        for job in self.jobs.values():
            job.cancel_timers()
        self.work.notify()
        self.changed.notify()
        for w in self.workers.values():
            w.stop_pulse.notify()

    def _faults_changed(self) -> None:
        self.rebill()
        self.work.notify()
        self.changed.notify()

    # ---- client API --------------------------------------------------------------------
    def submit(self, req: RunRequest, *, sync: bool) -> JobRecord:
        if self.closing:
            raise StateError(503, "the emulator is shutting down")
        if req.webhook is not None and not is_loopback_url(req.webhook):
            raise StateError(400, "webhook: the emulator only calls loopback URLs (127.0.0.1)")
        policy = req.policy
        cfg = self.config
        exec_ms = (policy and policy.executionTimeout) or cfg.default_execution_timeout_ms
        ttl_ms = (policy and policy.ttl) or cfg.default_ttl_ms
        parent_id, chunk = JobRecord.sibling_of(req.input)
        job = JobRecord(
            id=f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}-e1",
            parent_id=parent_id,
            chunk=chunk,
            input=req.input,
            webhook=req.webhook,
            execution_timeout_s=exec_ms / 1000,
            ttl_s=ttl_ms / 1000,
            low_priority=bool(policy and policy.lowPriority),
            sync=sync,
        )
        self.jobs[job.id] = job
        self._arm(job, "ttl", job.ttl_s, self._expire)
        if req.input in (None, {}, [], ""):
            # RunPod never hands a job with empty or null input to a worker: it waits, IN_QUEUE,
            # until its ttl (runpod-protocol.md §6).
            self.parked.add(job.id)
            self.note_error(
                "parked", "empty input: never dispatched (waits until its ttl)", job_id=job.id
            )
            self.changed.notify()
        else:
            self._enqueue(job)
        self.log(
            "emulator",
            "INFO",
            f"queued (depth {len(self.queue) + len(self.queue_low)})"
            if job.id not in self.parked
            else "queued with empty input: never dispatched",
            job.id,
        )
        return job

    def get(self, job_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        if job is None:
            raise StateError(404, f"job {job_id!r} not found (unknown, or expired: ttl/retention)")
        return job

    async def wait_final(self, job_id: str, timeout_s: float) -> JobRecord | None:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.jobs.get(job_id)
            if job is None or job.status.is_final() or self.closing:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return job
            await self.changed.wait(remaining)

    async def stream(self, job_id: str, wait_s: float) -> dict[str, Any]:
        """New chunks since the last /stream call (held up to wait_s for one)."""
        deadline = time.monotonic() + wait_s
        while True:
            job = self.get(job_id)
            fresh = job.stream[job.stream_cursor :]
            remaining = deadline - time.monotonic()
            if fresh or job.status.is_final() or remaining <= 0 or self.closing:
                job.stream_cursor = len(job.stream)
                body = {"status": str(job.status), "stream": [{"output": c} for c in fresh]}
                if job.status.is_final() and job.error is not None:
                    body["error"] = job.error
                return body
            await self.changed.wait(remaining)

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job.status is JobStatus.IN_QUEUE:
            self._dequeue(job)
        elif job.status is JobStatus.IN_PROGRESS:
            self._stop_on_worker(job)
        else:
            return {"id": job.id, "status": str(job.status)}
        self.counters["cancelled"] += 1
        self._finish(job, JobStatus.CANCELLED)
        return {"id": job.id, "status": str(job.status)}

    def retry(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            raise StateError(
                400, f"only FAILED or TIMED_OUT jobs can be retried; {job_id} is {job.status}"
            )
        job.cancel_timers()
        job.output, job.has_output, job.error, job.progress = None, False, None, None
        job.stream, job.stream_cursor = [], 0
        job.started_at = job.finished_at = None
        job.run_s = 0.0
        job.created_at = time.monotonic()
        self._arm(job, "ttl", job.ttl_s, self._expire)
        self._enqueue(job)
        return {"id": job.id, "status": str(job.status)}

    def purge(self) -> int:
        ids = [*self.queue, *self.queue_low, *sorted(self.parked)]
        for job_id in ids:
            job = self.jobs[job_id]
            self._dequeue(job)
            job.error = "purged from the queue"
            self._finish(job, JobStatus.CANCELLED)
        return len(ids)

    def health(self) -> dict[str, Any]:
        workers = {"idle": 0, "running": 0, "initializing": 0, "throttled": 0, "unhealthy": 0}
        for w in self.workers.values():
            if w.active:
                workers[self.worker_state(w)] += 1
        workers["ready"] = workers["idle"]
        return {
            "jobs": {
                "completed": self.counters["completed"],
                "failed": self.counters["failed"],
                "inProgress": self._running(),
                "inQueue": len(self.queue) + len(self.queue_low) + len(self.parked),
                "retried": self.counters["retried"],
            },
            "workers": workers,
            "billing": self.billing(),
        }

    # ---- introspection -----------------------------------------------------------------
    def busy(self) -> bool:
        return bool(
            self.queue
            or self.queue_low
            or self._webhooks
            or self._running()
            or any(w.alive and w.stopping for w in self.workers.values())  # still stopping
        )

    def _running(self) -> int:
        """Jobs IN_PROGRESS: each is in its worker's set until it ends or is re-queued."""
        return sum(len(w.jobs) for w in self.workers.values())

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                raise TimeoutError(f"condition not met within {timeout_s}s")
            await self.changed.wait(remaining)

    async def wait_idle(self, timeout_s: float) -> None:
        try:
            await self.wait_until(lambda: not self.busy(), timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"emulator not idle after {timeout_s}s: {self.health()['jobs']}"
            ) from None

    # ---- internals ---------------------------------------------------------------------
    def _arm(self, job: JobRecord, name: str, delay_s: float, fn: Callable[[str], None]) -> None:
        job.cancel_timer(name)
        job.timers[name] = asyncio.get_running_loop().call_later(delay_s, fn, job.id)

    def _enqueue(self, job: JobRecord, *, front: bool = False) -> None:
        job.status = JobStatus.IN_QUEUE
        q = self.queue_low if job.low_priority else self.queue
        q.appendleft(job.id) if front else q.append(job.id)
        self.work.notify()
        self.changed.notify()

    def _dequeue(self, job: JobRecord) -> None:
        self.parked.discard(job.id)
        for q in (self.queue, self.queue_low):
            if job.id in q:
                q.remove(job.id)

    def _pop(self, n: int) -> list[JobRecord]:
        out: list[JobRecord] = []
        while len(out) < n and (self.queue or self.queue_low):
            out.append(self.jobs[(self.queue or self.queue_low).popleft()])
        return out

    def _assign(self, w: WorkerInfo, job: JobRecord) -> JobRecord:
        job.status = JobStatus.IN_PROGRESS
        job.worker_id = w.id
        job.started_at = time.monotonic()
        job.attempts += 1
        w.jobs.add(job.id)
        self.event("assign", w.id, job.id)
        if self.on_log is not None:
            waited_s = job.started_at - job.created_at
            self.log(w.id, "INFO", f"took the job after {waited_s:.2f}s in the queue", job.id)
        self._arm(job, "exec", job.execution_timeout_s, self._timed_out)
        self.changed.notify()
        return job

    def _stop_on_worker(self, job: JobRecord) -> None:
        w = self.workers.get(job.worker_id or "")
        if w is not None and job.id in w.jobs:
            w.jobs.discard(job.id)
            now = time.monotonic()
            if job.started_at is not None:
                w.running_s += now - job.started_at
            if not w.jobs:
                w.idle_since = now
            w.stopping[job.id] = now
            w.pending_stops.append(job.id)
            w.stop_pulse.notify()
            self.work.notify()

    def _finish(self, job: JobRecord, status: JobStatus) -> None:
        job.status = status
        job.finished_at = time.monotonic()
        job.cancel_timers()
        self.parked.discard(job.id)
        w = self.workers.get(job.worker_id or "")
        if w is not None and job.id in w.jobs:
            w.jobs.discard(job.id)
            if job.started_at is not None:
                w.running_s += job.finished_at - job.started_at
            if not w.jobs:
                w.idle_since = job.finished_at
        if status is JobStatus.COMPLETED:
            self.counters["completed"] += 1
        elif status in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            self.counters["failed"] += 1
            self.note_error(str(status), job.error, job_id=job.id, worker_id=job.worker_id)
        if self.on_log is not None:
            took = job.execution_s()
            where = f" on {job.worker_id}" if job.worker_id else ""
            timing = f" after {took:.2f}s" if took is not None else ""
            why = f": {job.error}" if isinstance(job.error, str) and job.error else ""
            level = "INFO" if status in (JobStatus.COMPLETED, JobStatus.CANCELLED) else "WARN"
            self.log("emulator", level, f"{status}{where}{timing}{why}", job.id)
        keep_s = self.config.runsync_retention_s if job.sync else self.config.result_retention_s
        self._arm(job, "retention", keep_s, self._forget)
        if job.webhook:
            task = asyncio.get_running_loop().create_task(
                self._send_webhook(job.webhook, job.status_body())
            )
            self._webhooks.add(task)
            task.add_done_callback(self._webhook_done)
        self.changed.notify()

    def _webhook_done(self, task: asyncio.Task[None]) -> None:
        self._webhooks.discard(task)
        self.changed.notify()

    async def _send_webhook(self, url: str, body: dict[str, Any]) -> None:
        # A webhook URL often carries a per-job secret in its path or query: log its origin only.
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
        async with httpx.AsyncClient(timeout=10) as client:
            for attempt in range(3):
                try:
                    r = await client.post(url, json=body)
                    if r.status_code < 300:
                        return
                    logger.warning("webhook {} answered {}", where, r.status_code)
                except httpx.HTTPError as exc:
                    logger.warning("webhook {} failed: {}", where, type(exc).__name__)
                await asyncio.sleep(0.5 * 2**attempt)

    def _timed_out(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.status is not JobStatus.IN_PROGRESS:
            return
        self._stop_on_worker(job)
        job.error = f"execution timeout: no result within {job.execution_timeout_s:g}s"
        self._finish(job, JobStatus.TIMED_OUT)

    def _expire(self, job_id: str) -> None:
        """ttl reached before the job ended: it is deleted (/status answers 404)."""
        job = self.jobs.get(job_id)
        if job is None or job.status in FINAL:
            return
        if job.status is JobStatus.IN_PROGRESS:
            self._stop_on_worker(job)
        self._dequeue(job)
        self.counters["expired"] += 1
        self.note_error(
            "expired",
            f"ttl of {job.ttl_s:g}s reached before the job ended",
            job_id=job_id,
            worker_id=job.worker_id,
        )
        self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None:
            job.cancel_timers()
            self.changed.notify()
