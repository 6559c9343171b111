"""Per-operation request counters of the emulated endpoint, for scale tests and benchmarks.

Every request the app routes is counted under its operation (`run`, `status`, `stream`,
`job-take`, `job-done`, `ping`, ...) in one-second buckets of wall-clock time, so memory grows
with the seconds the emulator runs, not with the requests. `stats()` gives, per operation over a
window: the total, the mean and peak requests per second, and the peak over any 10 s (RunPod
publishes its rate limits per 10 s: /run 1,000, /status and /stream 2,000, /cancel 100; see
runpod-protocol.md §3).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from podfleet.emulator.config import CLIENT_ROUTES

__all__ = ["CLIENT_OPERATIONS", "RUNPOD_LIMITS_PER_10S", "WORKER_OPERATIONS", "RequestCounter"]

CLIENT_OPERATIONS = CLIENT_ROUTES
WORKER_OPERATIONS = ("job-take", "job-take-batch", "job-stop", "job-done", "job-stream", "ping")

# RunPod's published per-endpoint rate limits (requests per 10 s), runpod-protocol.md §3.
RUNPOD_LIMITS_PER_10S = {
    "run": 1000,
    "runsync": 2000,
    "status": 2000,
    "stream": 2000,
    "cancel": 100,
    "purge-queue": 2,
}


class RequestCounter:
    """Counts requests per operation and per wall-clock second. One event loop (no lock)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self.started_at = clock()
        self._buckets: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.totals: dict[str, int] = defaultdict(int)

    def record(self, operation: str) -> None:
        self._buckets[operation][int(self._clock())] += 1
        self.totals[operation] += 1

    def recent(self, operation: str, window_s: int = 10) -> int:
        """Requests of `operation` in the current second and the window_s - 1 before it."""
        buckets = self._buckets.get(operation)
        if not buckets:
            return 0
        now = int(self._clock())
        return sum(buckets.get(s, 0) for s in range(now - window_s + 1, now + 1))

    def over_limit(self, operation: str) -> int | None:
        """RunPod's per-10 s limit when `operation` has gone over it, else None."""
        limit = RUNPOD_LIMITS_PER_10S.get(operation)
        if limit is not None and self.recent(operation) > limit:
            return limit
        return None

    def stats(
        self, *, since: float | None = None, until: float | None = None
    ) -> dict[str, dict[str, Any]]:
        """Per operation, over [since, until] (wall-clock seconds; default: the whole run):
        total, mean_per_s, peak_per_s (busiest second), peak_per_10s (busiest 10 s window),
        limit_per_10s (RunPod's, when published). Plus "all" summed over operations, and
        "window_s" (the window's length)."""
        now = self._clock()
        start = self.started_at if since is None else max(since, self.started_at)
        end = now if until is None else min(until, now)
        window_s = max(end - start, 1.0)
        lo, hi = int(start), int(end)
        out: dict[str, Any] = {}
        combined: dict[int, int] = defaultdict(int)
        for op, buckets in sorted(self._buckets.items()):
            seconds = {s: n for s, n in buckets.items() if lo <= s <= hi}
            for s, n in seconds.items():
                combined[s] += n
            out[op] = self._summary(seconds, window_s)
            if op in RUNPOD_LIMITS_PER_10S:
                out[op]["limit_per_10s"] = RUNPOD_LIMITS_PER_10S[op]
        out["all"] = self._summary(combined, window_s)
        out["window_s"] = round(window_s, 3)
        return out

    @staticmethod
    def _summary(seconds: dict[int, int], window_s: float) -> dict[str, Any]:
        total = sum(seconds.values())
        peak_10 = 0
        if seconds:
            keys = sorted(seconds)
            # sliding sum over 10 consecutive seconds, via two pointers over the sorted seconds
            left, running = 0, 0
            for s in keys:
                running += seconds[s]
                while keys[left] <= s - 10:
                    running -= seconds[keys[left]]
                    left += 1
                peak_10 = max(peak_10, running)
        return {
            "total": total,
            "mean_per_s": round(total / window_s, 2),
            "peak_per_s": max(seconds.values(), default=0),
            "peak_per_10s": peak_10,
        }
