"""Which mode a job runs in: coordinate (fan out to siblings) or work (run the pipeline here)."""

from __future__ import annotations

from typing import Literal

from podfleet.envelope import ParsedJob
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings

__all__ = ["choose_mode", "default_chunk_size", "effective_workers"]


def effective_workers(parsed: ParsedJob, settings: Settings) -> int:
    return parsed.envelope.workers or settings.runpod_workers


def default_chunk_size(n_items: int, workers: int, configured: int = 0) -> int:
    """About four chunks per worker, so a slow chunk cannot hold the rest (dynamic scheduling)."""
    if configured > 0:
        return configured
    return max(1, -(-n_items // (workers * 4)))


def choose_mode(parsed: ParsedJob, settings: Settings) -> Literal["coordinator", "worker"]:
    env = parsed.envelope
    if env.sibling is not None or env.mode == "worker":
        return "worker"  # siblings never fan out again
    workers = effective_workers(parsed, settings)
    if env.mode == "coordinator":
        if not settings.endpoint_configured:
            raise InputError("mode", "mode 'coordinator' needs an endpoint: set RUNPOD_ENDPOINT_ID")
        return "coordinator"
    chunk = default_chunk_size(len(parsed.items), workers, settings.chunk_size)
    if workers > 1 and len(parsed.items) > chunk and settings.endpoint_configured:
        return "coordinator"
    return "worker"
