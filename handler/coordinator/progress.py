"""Publishing a coordinator's progress with `runpod.serverless.progress_update` (throttled)."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

__all__ = ["ProgressPublisher"]


class ProgressPublisher:
    """Posts `{"items_done", "items_total", ...}` at most every `min_interval_s`, on RunPod only
    (the SDK posts to the worker's job-done URL, which exists only inside the worker loop)."""

    def __init__(self, job: dict[str, Any], *, enabled: bool, min_interval_s: float = 1.0):
        self.job = job
        self.enabled = enabled and bool(job.get("id"))
        self.min_interval_s = min_interval_s
        self._last_s = float("-inf")
        self._last: dict[str, Any] | None = None

    def update(self, data: dict[str, Any], *, force: bool = False) -> None:
        if not self.enabled or data == self._last:
            return
        now = time.monotonic()
        if not force and now - self._last_s < self.min_interval_s:
            return
        self._last_s, self._last = now, dict(data)
        try:
            import runpod  # lazily: only coordinators inside a worker loop publish progress

            runpod.serverless.progress_update(self.job, data)
        except Exception as exc:  # progress is best effort; never fail the job for it
            logger.warning("progress update failed: {}", exc)
