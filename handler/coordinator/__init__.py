"""Coordinator mode: fan a job's items out to sibling jobs on the endpoint, work on chunks here
meanwhile, and merge everything back in input order (docs/coordinator.md)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from loguru import logger
from podfleet.api import EndpointClient, Policy
from podfleet.coordinator.chunks import Chunk, chunk_job, chunk_sizes, local_job
from podfleet.coordinator.merge import Merger
from podfleet.coordinator.progress import ProgressPublisher
from podfleet.coordinator.scheduler import LocalRunner, Scheduler, SchedulerConfig
from podfleet.coordinator.siblings import SiblingPool
from podfleet.coordinator.stats import FanoutStats
from podfleet.envelope import ParsedJob
from podfleet.modes import effective_workers
from podfleet.output import JobOutput, job_output, run_output
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.runner import PipelineRun
from podfleet.settings import Settings
from podfleet.worker import run_here

__all__ = ["coordinate"]

LOCAL_GRACE_S = 30.0


def _local_runner(parsed: ParsedJob, settings: Settings, *, coordinator_loads: bool) -> LocalRunner:
    async def run_local(chunk: Chunk, deadline: Deadline) -> JobOutput:
        t0 = time.perf_counter()
        job = local_job(parsed, chunk, return_records=coordinator_loads)
        # The scheduler cancels this run at the job deadline (its items are then `missing`); the
        # stages' own deadline is set past it so they do not fail the items first.
        run = await run_here(
            job,
            settings,
            deadline.plus(LOCAL_GRACE_S),
            load=not coordinator_loads,
            keep_records=coordinator_loads,
        )
        return run_output(job, run, mode="worker", workers=1, duration_s=time.perf_counter() - t0)

    return run_local


async def coordinate(
    parsed: ParsedJob,
    settings: Settings,
    job: dict[str, Any],
    *,
    client: EndpointClient | None = None,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Run `parsed` as a coordinator job by `deadline` (default: REQUEST_TIMEOUT from now); returns
    the job's output dict (partial at the deadline). `client` is for tests that bring their own
    transport; by default one is built from settings."""
    t0 = time.perf_counter()
    deadline = deadline or Deadline.after(settings.request_timeout)
    env = parsed.envelope
    workers = effective_workers(parsed, settings)
    sizes = chunk_sizes(len(parsed.items), workers, settings.chunk_size)
    chunks = chunk_job(parsed, sizes, settings.chunk_order)
    coordinator_loads = settings.load_mode == "coordinator"
    item_ids = list(parsed.item_ids)
    stats = FanoutStats(
        chunks=len(chunks),
        chunk_size=max(sizes),
        chunk_plan="fixed" if settings.chunk_size > 0 else "guided",
    )
    merger = Merger(item_ids, keep_records=coordinator_loads)
    logger.info(
        "coordinating {} items in {} chunks of {}..{} over {} workers (load by {})",
        len(item_ids),
        len(chunks),
        max(sizes),
        min(sizes),
        workers,
        settings.load_mode,
    )

    cleanup_stats = None
    if env.cleanup and not coordinator_loads and parsed.pipeline.load is not None:
        # Sibling load mode with cleanup: the date's rows are deleted once, here, before any
        # sibling loads (the pipeline's own load, with no records and cleanup on).
        cleaner = dataclasses.replace(
            parsed, envelope=parsed.envelope.model_copy(update={"cleanup": True})
        )
        done = await run_here(cleaner, settings, deadline, load_only=PipelineRun([], [], []))
        cleanup_stats = done.load_stats

    own_client = client is None
    client = client or EndpointClient.from_settings(settings)
    policy = Policy(
        execution_timeout_s=settings.sibling_execution_timeout_s, ttl_s=settings.sibling_ttl_s
    )
    pool = SiblingPool(
        client,
        parsed,
        policy,
        stats,
        return_records=coordinator_loads,
        cleanup=False,
        deadline=deadline,
    )
    progress = ProgressPublisher(job, enabled=settings.on_runpod)

    def publish() -> None:
        if len(merger.finished) == len(chunks):
            return  # the result follows at once; a last progress post would arrive after it
        progress.update(
            {
                "items_done": merger.items_done,
                "items_total": len(item_ids),
                "chunks_done": len(merger.finished),
                "chunks_total": len(chunks),
                "siblings_in_flight": len(pool),
            }
        )

    config = SchedulerConfig(
        workers=workers,
        max_retries=settings.sibling_max_retries,
        pickup_timeout_s=settings.pickup_timeout_s,
        poll_interval_s=settings.status_poll_interval_s,
        deadline=deadline,
        want_records=coordinator_loads,
    )
    runner = _local_runner(parsed, settings, coordinator_loads=coordinator_loads)
    scheduler = Scheduler(chunks, pool, merger, stats, config, runner, publish)
    try:
        await scheduler.run()
    finally:
        if own_client:
            await client.aclose()

    missing_positions: list[int] = []
    for chunk in scheduler.unfinished_chunks():
        missing_positions.extend(chunk.positions)
        merger.fail(chunk, "coordinator", "no result before the job deadline", retryable=True)

    load = merger.load_summary()
    if coordinator_loads and parsed.pipeline.load is not None:
        # The job's own deadline, not a fresh budget: a load that checks it knows how late it is.
        merged = PipelineRun(merger.results, merger.ordered_errors(), merger.records or [])
        run = await run_here(parsed, settings, deadline, load_only=merged)
        load = run.load_stats
        for err in run.errors:  # a failed load fails the items it held
            merger.errors.setdefault(err.item_id, err)
    elif cleanup_stats and load is not None:
        load["cleaned"] = load.get("cleaned", 0) + cleanup_stats.get("cleaned", 0)

    timings = dict(merger.timings_s)
    timings["coordinate"] = round(time.perf_counter() - t0, 4)
    out = job_output(
        parsed,
        mode="coordinator",
        workers=workers,
        duration_s=time.perf_counter() - t0,
        results=merger.results,
        errors=merger.ordered_errors(),
        timings_s=timings,
        load=load,
        fanout=stats.to_dict(),
        missing=[item_ids[p] for p in sorted(missing_positions)],
    )
    return out.to_output()
