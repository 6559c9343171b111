"""Scaling of the emulated endpoint, as RunPod's queue-delay scaler does it in spirit:

- slots below `workers_min` always run (RunPod's active workers);
- a queued job that no idle or starting worker can take starts one more worker, up to
  `workers` (workersMax); it initializes (its real start-up plus `cold_start_s`) before it
  takes a job;
- a worker above the minimum that has been idle for `idle_timeout_s` with nothing queued is
  stopped (drained, SIGTERM): scale to zero. Its slot waits until it is wanted again.
A scaled-down worker is no longer listed (RunPod lists active workers only) and no longer billed.
Decisions are taken at every change of the endpoint and at least every `tick_s`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from podfleet.emulator.pool import WorkerPool
    from podfleet.emulator.workers import WorkerInfo

__all__ = ["Scaler"]


class Scaler:
    def __init__(self, pool: WorkerPool, *, tick_s: float = 0.25) -> None:
        self.pool = pool
        self.state = pool.state
        cfg = self.state.config
        self.floor = cfg.workers_min or 0
        self.tick_s = tick_s
        self._want = {slot: asyncio.Event() for slot in range(cfg.workers)}
        for slot in range(min(self.floor, cfg.workers)):
            self._want[slot].set()
        self._scaled: set[int] = set()  # slots being stopped by a scale-down

    async def wanted(self, slot: int) -> bool:
        """Wait until the slot should run a worker; False when the pool is stopping."""
        await self._want[slot].wait()
        return not self.pool.stopping

    def stopped(self, slot: int, w: WorkerInfo) -> bool:
        """After a worker's exit: True if a scale-down stopped it (its slot now waits)."""
        if slot not in self._scaled:
            return False
        self._scaled.discard(slot)
        w.active = False
        self.state.rebill()
        self.state.changed.notify()
        return True

    def wake_all(self) -> None:
        for event in self._want.values():
            event.set()

    async def run(self) -> None:
        while not self.pool.stopping:
            self.step()
            await self.state.changed.wait(self.tick_s)

    def step(self) -> None:
        st, cfg = self.state, self.state.config
        now = time.monotonic()
        queued = len(st.queue) + len(st.queue_low)
        up = [s for s, e in self._want.items() if e.is_set() and s not in self._scaled]
        free = 0  # workers that will take a queued job without a new one starting
        for slot in up:
            w = st.workers.get(f"worker-{slot}")
            if w is None or not w.alive:
                free += 1  # starting
            elif not w.jobs and not w.draining and not st.throttled(w):
                free += 1
        need = queued - free
        for slot, event in self._want.items():
            if need <= 0:
                break
            if not event.is_set() and slot not in self._scaled:
                event.set()
                need -= 1
        if queued:
            return
        for slot in up:
            if slot < self.floor:
                continue
            w = st.workers.get(f"worker-{slot}")
            if w is None or not w.alive or w.jobs or w.draining or not w.has_taken:
                continue
            if now - max(w.idle_since, w.ready_at) < cfg.idle_timeout_s:
                continue
            self._scaled.add(slot)
            self._want[slot].clear()
            if not self.pool.stop_worker(w.id):
                self._scaled.discard(slot)
