"""The worker side of the emulated endpoint: registration, long-polled takes and stops, results,
heartbeats, deaths and lost workers. A mixin of `EndpointState` (same object, same event loop)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger
from podfleet.emulator.jobs import JobRecord, JobStatus
from podfleet.emulator.workers import Pulse, WorkerInfo, WorkerState

if TYPE_CHECKING:
    from podfleet.emulator.config import EmulatorConfig, FaultConfig

__all__ = ["WorkerProtocol"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class WorkerProtocol:
    # provided by EndpointState
    config: EmulatorConfig
    faults: FaultConfig
    jobs: dict[str, JobRecord]
    queue: deque[str]
    queue_low: deque[str]
    workers: dict[str, WorkerInfo]
    counters: dict[str, int]
    work: Pulse
    changed: Pulse
    closing: bool
    on_lost: Callable[[str], None] | None
    on_refresh: Callable[[str], None] | None
    version: int

    if TYPE_CHECKING:

        def event(self, kind: str, worker_id: str, job_id: str | None = None) -> None: ...
        def _pop(self, n: int) -> list[JobRecord]: ...
        def _assign(self, w: WorkerInfo, job: JobRecord) -> JobRecord: ...
        def _finish(self, job: JobRecord, status: JobStatus) -> None: ...
        def _enqueue(self, job: JobRecord, *, front: bool = False) -> None: ...
        def rebill(self) -> None: ...
        def note_error(
            self,
            kind: str,
            message: Any,
            *,
            job_id: str | None = None,
            worker_id: str | None = None,
        ) -> None: ...

    def register_worker(self, worker_id: str, slot: int, *, supervised: bool) -> WorkerInfo:
        w = self.workers.get(worker_id)
        if w is None:
            w = self.workers[worker_id] = WorkerInfo(worker_id, slot, supervised)
        w.gen += 1
        w.alive, w.has_taken, w.draining = True, False, False
        w.started_at = w.idle_since = time.monotonic()
        w.started_wall = time.time()
        w.version, w.active = self.version, True
        w.ready_at = w.started_at + self.faults.cold_start_s
        w.pending_stops.clear()
        w.stopping.clear()
        w.heartbeat_jobs = []
        w.touch()
        self.rebill()
        loop = asyncio.get_running_loop()
        if self.faults.cold_start_s:
            loop.call_later(self.faults.cold_start_s, self.changed.notify)
        loop.call_later(self.config.ready_timeout_s, self.changed.notify)  # may turn unhealthy
        self.changed.notify()
        return w

    def drain(self, worker_id: str) -> None:
        """The worker is being stopped: answer its held polls now, give it no more jobs."""
        w = self.workers.get(worker_id)
        if w is not None:
            w.draining = True
            self.work.notify()
            w.stop_pulse.notify()

    def throttled(self, w: WorkerInfo) -> bool:
        cap = self.faults.max_workers
        return cap is not None and w.slot >= cap

    def worker_state(self, w: WorkerInfo) -> WorkerState:
        cfg = self.config
        return w.state(
            throttled=self.throttled(w),
            threshold=cfg.unhealthy_after_crashes,
            window_s=cfg.crash_window_s,
            ready_timeout_s=cfg.ready_timeout_s,
        )

    def current(self, worker_id: str, gen: int | None) -> WorkerInfo | None:
        """The worker, if the request comes from its live generation."""
        w = self.workers.get(worker_id)
        if w is None or not w.alive or (gen is not None and gen != w.gen):
            return None
        return w

    async def take(self, w: WorkerInfo, max_jobs: int, timeout_s: float) -> list[dict[str, Any]]:
        """Long-poll for up to max_jobs jobs; [] when none came within timeout_s."""
        gen = w.gen
        w.has_taken = True
        w.polling += 1
        self.changed.notify()  # the worker is ready and polling (wait_ready)
        self.event("take", w.id)
        w.touch()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.closing or w.draining or not w.alive or w.gen != gen:
                    return []
                now = time.monotonic()
                wait_s = deadline - now
                if now < w.ready_at:
                    wait_s = min(wait_s, w.ready_at - now)
                elif not self.throttled(w) and (self.queue or self.queue_low):
                    return [self._assign(w, job).job_payload() for job in self._pop(max_jobs)]
                if deadline - now <= 0:
                    return []
                await self.work.wait(wait_s)
        finally:
            w.polling -= 1
            w.touch()

    async def stop_signals(self, w: WorkerInfo, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            if w.pending_stops:
                ids, w.pending_stops = w.pending_stops, []
                return ids
            remaining = deadline - time.monotonic()
            if self.closing or w.draining or not w.alive or remaining <= 0:
                return []
            await w.stop_pulse.wait(remaining)

    def ping(self, w: WorkerInfo, job_ids: list[str]) -> None:
        """A heartbeat; it lists the jobs the worker still holds.

        A stop can reach the SDK before the job's task exists (it then finds nothing to cancel
        and drops the signal), so a stop is sent again while the worker still reports the job.
        A ping can be older than the job's arrival at the worker: a job counts as gone only when
        pings stop listing it two intervals after the stop was asked for.
        """
        w.touch()
        w.heartbeat_jobs = list(job_ids)
        reported = set(job_ids)
        settle_s = 2 * self.config.ping_interval_ms / 1000
        now = time.monotonic()
        for job_id, asked_at in list(w.stopping.items()):
            if job_id not in reported:
                if now - asked_at > settle_s:
                    del w.stopping[job_id]
                    self.changed.notify()
            elif job_id not in w.pending_stops:
                w.pending_stops.append(job_id)
                w.stop_pulse.notify()

    def post_stream(
        self, w: WorkerInfo, job_id: str, body: Any, size: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A job-stream post (a generator's yield, or any handler's `stream_result`): kept for
        /stream while the job runs on this worker. Returns (HTTP status, body).

        Any job may post chunks, not only generators. A chunk over `max_stream_chunk_bytes` is
        refused (413) and dropped; the job runs on (the SDK only logs a 4xx)."""
        w.touch()
        job = self.jobs.get(job_id)
        if job is None or job.status is not JobStatus.IN_PROGRESS or job.worker_id != w.id:
            self._ignored(job, w, "stream chunk for a job not running on this worker", body)
            return 200, {"accepted": False}
        limit = self.config.max_stream_chunk_bytes
        if size is not None and size > limit:
            why = f"stream chunk too large: {size} bytes > {limit} bytes limit (dropped)"
            self._ignored(job, w, why, None)
            self.note_error("stream", why, job_id=job_id, worker_id=w.id)
            return 413, {"error": why}
        job.stream.append(body.get("output") if isinstance(body, dict) else body)
        self.changed.notify()
        return 200, {"accepted": True}

    def post_done(self, w: WorkerInfo, job_id: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """A job-done post: a progress update or the final result. Returns (HTTP status, body)."""
        w.touch()
        job = self.jobs.get(job_id)
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
            if not isinstance(body, dict):
                raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        except ValueError as exc:
            if job is not None and job.status is JobStatus.IN_PROGRESS and job.worker_id == w.id:
                job.error = f"the worker posted an unreadable result: {exc}"
                self._finish(job, JobStatus.FAILED)
            return 400, {"error": f"unreadable result: {exc}"}
        if job is None:
            return 404, {"error": f"job {job_id!r} not found (expired or purged)"}
        owned = job.status is JobStatus.IN_PROGRESS and job.worker_id == w.id
        if body.get("status") == "IN_PROGRESS":
            if owned:
                job.progress = body.get("output")
                self.changed.notify()
            else:
                self._ignored(job, w, f"progress update after the job was {job.status}", body)
            return 200, {"accepted": owned}
        if not owned:
            w.stopping.pop(job_id, None)  # its result came: the worker is done with it
            self._ignored(job, w, f"result after the job was {job.status}", body)
            return 200, {"accepted": False, "reason": f"job is {job.status}"}
        limit = self.config.max_runsync_payload_bytes if job.sync else self.config.max_payload_bytes
        if len(raw) > limit:
            job.error = (
                f"result too large: {len(raw)} bytes > {limit} (store big outputs elsewhere)"
            )
            self._finish(job, JobStatus.FAILED)
            return 413, {"error": job.error}
        if "output" in body:
            job.output, job.has_output = body["output"], True
        if body.get("error") is not None:
            job.error = body["error"]
            self._finish(job, JobStatus.FAILED)
        else:
            self._finish(job, JobStatus.COMPLETED)
        w.jobs_done += 1
        self.event("done", w.id, job.id)
        if body.get("stopPod") and self.on_refresh is not None:
            self.on_refresh(w.id)
        return 200, {"accepted": True}

    def worker_exited(self, worker_id: str, reason: str, *, crash: bool) -> None:
        """The worker's process is gone: re-queue its jobs (bounded) or fail them."""
        w = self.workers[worker_id]
        w.alive = False
        if w.lost:
            reason, w.lost = f"{w.lost}, then {reason}", None
        w.last_exit = reason
        self.rebill()
        now = time.monotonic()
        if crash:
            w.exits.append(now)
            self.note_error("worker exit", reason, worker_id=worker_id)
        for job_id in sorted(w.jobs):
            job = self.jobs.get(job_id)
            if job is None or job.status is not JobStatus.IN_PROGRESS:
                continue
            job.cancel_timer("exec")
            w.jobs.discard(job_id)
            if job.started_at is not None:
                w.running_s += now - job.started_at
            if job.retries < self.config.max_job_retries:
                if job.started_at is not None:
                    job.run_s += now - job.started_at
                job.retries += 1
                self.counters["retried"] += 1
                job.worker_id, job.started_at, job.progress = None, None, None
                logger.warning("job {} re-queued: worker {} {}", job.id, worker_id, reason)
                self._enqueue(job, front=True)
            else:
                job.error = (
                    f"worker {worker_id} died while running the job ({reason}); retries exhausted"
                )
                self._finish(job, JobStatus.FAILED)
        w.jobs.clear()
        w.idle_since = now
        w.pending_stops.clear()
        w.stopping.clear()
        w.stop_pulse.notify()
        self.work.notify()
        self.changed.notify()

    def workers_info(self) -> list[dict[str, Any]]:
        return [w.info(self.worker_state(w)) for w in self.workers.values() if w.active]

    def _ignored(self, job: JobRecord | None, w: WorkerInfo, why: str, body: Any) -> None:
        if job is not None:
            job.ignored_posts.append({"worker_id": w.id, "reason": why, "body": body})
            self.changed.notify()
        # a late progress post is the SDK's normal race (it posts progress from a side thread)
        level = "DEBUG" if why.startswith("progress update") else "INFO"
        logger.log(level, "ignored a post from {}: {}", w.id, why)

    async def _watch_lost(self, interval_s: float) -> None:
        """A supervised worker that holds a job and has not been heard of for lost_after_s."""
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            for w in self.workers.values():
                silent_s = now - w.last_seen
                if w.supervised and w.alive and w.jobs and silent_s > self.config.lost_after_s:
                    logger.warning("worker {} lost: silent for {:.1f}s", w.id, silent_s)
                    w.lost = f"lost (silent for {silent_s:.1f}s)"
                    if self.on_lost is not None:
                        self.on_lost(w.id)
