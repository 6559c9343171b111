"""Which mode a job runs in: coordinate (fan out to siblings) or work (run the pipeline here)."""

from __future__ import annotations

from typing import Literal

from podfleet.envelope import ParsedJob
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings

__all__ = ["choose_mode", "effective_workers"]


def effective_workers(parsed: ParsedJob, settings: Settings) -> int:
    return parsed.envelope.workers or settings.runpod_workers


def choose_mode(parsed: ParsedJob, settings: Settings) -> Literal["coordinator", "worker"]:
    """`auto` fans out when there is an endpoint, more than one worker and the coordinator's own
    chunking rule (`coordinator.chunks.chunk_sizes`) makes more than one chunk of the items.
    Items by reference (`items_from`) are counted only when the coordinator plans them, so such
    a job fans out whenever there is an endpoint and more than one worker."""
    env = parsed.envelope
    if env.sibling is not None or env.mode == "worker":
        return "worker"  # siblings never fan out again
    workers = effective_workers(parsed, settings)
    if env.mode == "coordinator":
        if not settings.endpoint_configured:
            raise InputError("mode", "mode 'coordinator' needs an endpoint: set RUNPOD_ENDPOINT_ID")
        return "coordinator"
    if workers < 2 or not settings.endpoint_configured:
        return "worker"
    if env.items_from is not None:
        return "coordinator"
    from podfleet.coordinator.chunks import chunk_sizes  # the package imports this module

    first_chunk = chunk_sizes(len(parsed.items), workers, settings.chunk_size)[0]
    return "coordinator" if len(parsed.items) > first_chunk else "worker"
