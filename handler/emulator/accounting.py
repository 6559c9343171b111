"""Accounting of the emulated endpoint: billed worker-seconds, recent errors, releases.
A mixin of `EndpointState` (same object, same event loop)."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from podfleet.emulator.jobs import JobRecord, JobStatus
from podfleet.emulator.workers import Pulse, WorkerInfo

__all__ = ["Accounting"]


class Accounting:
    # provided by EndpointState
    jobs: dict[str, JobRecord]
    workers: dict[str, WorkerInfo]
    errors: deque[dict[str, Any]]
    changed: Pulse
    version: int
    started_at: float

    if TYPE_CHECKING:

        def throttled(self, w: WorkerInfo) -> bool: ...

    def note_error(
        self, kind: str, message: Any, *, job_id: str | None = None, worker_id: str | None = None
    ) -> None:
        """A recent error for the dashboard (bounded text; never a job's input)."""
        text = message if isinstance(message, str) else repr(message)
        if len(text) > 300:
            text = text[:300] + f"... (+{len(text) - 300} chars)"
        self.errors.append(
            {
                "t": time.time(),
                "kind": kind,
                "job_id": job_id,
                "worker_id": worker_id,
                "message": text,
            }
        )

    def release(self) -> int:
        """A new endpoint release: running workers are stale until they restart."""
        self.version += 1
        self.changed.notify()
        return self.version

    def rebill(self) -> None:
        """Open/close each worker's billable interval: alive, listed and not throttled."""
        now = time.monotonic()
        for w in self.workers.values():
            w.bill(w.alive and w.active and not self.throttled(w), now)

    def billing(self) -> dict[str, Any]:
        """Billed worker-seconds as RunPod bills them: from a worker's start to its stop
        (cold start, running and idle time until the idle timeout), throttled time excluded."""
        now = time.monotonic()
        billed = sum(w.billed_total_s(now) for w in self.workers.values())
        running = sum(w.running_s for w in self.workers.values())
        running += sum(
            now - j.started_at
            for j in self.jobs.values()
            if j.status is JobStatus.IN_PROGRESS and j.started_at is not None
        )
        return {
            "workerSeconds": round(billed, 3),
            "runningSeconds": round(min(running, billed) if billed else running, 3),
            "idleSeconds": round(max(0.0, billed - running), 3),
            "uptimeSeconds": round(now - self.started_at, 3),
        }
