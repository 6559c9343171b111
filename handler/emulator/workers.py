"""What the emulator knows about each worker, and the wake-up primitive its long-polls wait on."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Pulse", "WorkerInfo", "WorkerState"]

WorkerState = Literal["initializing", "idle", "running", "throttled", "unhealthy"]


class Pulse:
    """Wakes everything waiting at the moment `notify()` is called (single event loop).

    Waiters check their condition, then `await pulse.wait(timeout)`; as nothing can run between
    the check and the wait, no wake-up is lost. No polling: an idle waiter costs nothing.
    """

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None

    def notify(self) -> None:
        if self._fut is not None and not self._fut.done():
            self._fut.set_result(None)
        self._fut = None

    async def wait(self, timeout_s: float | None) -> None:
        if self._fut is None:
            self._fut = asyncio.get_running_loop().create_future()
        fut = self._fut
        if timeout_s is not None and timeout_s <= 0:
            return
        await asyncio.wait([fut], timeout=timeout_s)


@dataclass
class WorkerInfo:
    id: str
    slot: int
    supervised: bool  # a process the pool runs (pings expected), not an in-process task
    gen: int = 0
    pid: int | None = None
    alive: bool = False
    started_at: float = field(default_factory=time.monotonic)
    ready_at: float = 0.0  # cold start: no job before this
    has_taken: bool = False  # asked for a job since (re)start
    polling: int = 0  # job-take requests held open right now
    last_seen: float = field(default_factory=time.monotonic)
    jobs: set[str] = field(default_factory=set)
    pending_stops: list[str] = field(default_factory=list)  # for the next job-stop reply
    stopping: dict[str, float] = field(default_factory=dict)  # job → when a stop was asked
    stop_pulse: Pulse = field(default_factory=Pulse)
    restarts: int = 0
    exits: deque[float] = field(default_factory=deque)
    last_exit: str | None = None
    lost: str | None = None  # why the lost-worker watch killed it
    draining: bool = False
    jobs_done: int = 0
    version: int = 0  # the endpoint release this process started on (isStale when older)
    active: bool = True  # False once scaled down (RunPod then lists it no more)
    idle_since: float = field(default_factory=time.monotonic)  # last job end or (re)start
    billed_s: float = 0.0  # closed billable intervals (alive and not throttled)
    billing_since: float | None = None  # start of the open billable interval
    running_s: float = 0.0  # time spent running jobs (closed jobs)
    started_wall: float = field(default_factory=time.time)
    heartbeat_jobs: list[str] = field(default_factory=list)  # job ids its last ping listed

    def bill(self, billable: bool, now: float | None = None) -> None:
        """Open or close the billable interval (RunPod bills a worker from start to stop)."""
        now = time.monotonic() if now is None else now
        if billable and self.billing_since is None:
            self.billing_since = now
        elif not billable and self.billing_since is not None:
            self.billed_s += now - self.billing_since
            self.billing_since = None

    def billed_total_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        open_s = 0.0 if self.billing_since is None else now - self.billing_since
        return self.billed_s + open_s

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def crash_looping(self, threshold: int, window_s: float) -> bool:
        now = time.monotonic()
        while self.exits and now - self.exits[0] > window_s:
            self.exits.popleft()
        return len(self.exits) >= threshold

    def state(
        self, *, throttled: bool, threshold: int, window_s: float, ready_timeout_s: float
    ) -> WorkerState:
        looping = self.crash_looping(threshold, window_s)
        if self.alive and not self.has_taken:
            looping = looping or time.monotonic() - self.started_at > ready_timeout_s
        if not self.alive:
            return "unhealthy" if looping else "initializing"
        if self.jobs:
            return "running"
        if throttled:
            return "throttled"
        if not self.has_taken or time.monotonic() < self.ready_at:
            return "unhealthy" if looping else "initializing"
        return "idle"

    def info(self, state: WorkerState) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "state": state,
            "restarts": self.restarts,
            "jobs": sorted(self.jobs),
            "jobs_done": self.jobs_done,
            "polling": self.polling > 0,
            "heartbeat_jobs": list(self.heartbeat_jobs),
            "last_exit": self.last_exit,
            "supervised": self.supervised,
            "version": self.version,
            "active": self.active,
            "billed_s": round(self.billed_total_s(), 3),
            "running_s": round(self.running_s, 3),
        }
