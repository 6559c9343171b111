"""Coordinator mode: fan a job's items out to sibling jobs on the endpoint, work on chunks here
meanwhile, and merge everything back in input order (docs/coordinator.md)."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from podfleet.api import EndpointClient, Policy
from podfleet.coordinator.chunks import Chunk, chunk_job, chunk_sizes, local_job
from podfleet.coordinator.merge import ChunkResult, Merger
from podfleet.coordinator.progress import ProgressPublisher
from podfleet.coordinator.scheduler import Scheduler, SchedulerConfig
from podfleet.coordinator.siblings import SiblingPool
from podfleet.coordinator.stats import FanoutStats
from podfleet.envelope import ParsedJob
from podfleet.modes import effective_workers
from podfleet.output import job_output
from podfleet.pipeline.runner import PipelineRun, load_records, run_pipeline
from podfleet.settings import Settings
from podfleet.worker import run_context

__all__ = ["coordinate"]

LOCAL_GRACE_S = 30.0


async def _cleanup_before_fanout(parsed: ParsedJob, settings: Settings) -> dict[str, Any] | None:
    """Sibling load mode with cleanup: delete the date's rows once, here, before any sibling loads
    (the pipeline's own load with no records and cleanup on)."""
    ctx = run_context(parsed, settings)
    ctx.cleanup = True
    return await load_records(parsed.pipeline, [], [], PipelineRun([], [], []), ctx)


def _local_runner(parsed: ParsedJob, settings: Settings, *, coordinator_loads: bool):
    async def run_local(chunk: Chunk, remaining_s: float) -> ChunkResult:
        job = local_job(parsed, chunk, return_records=coordinator_loads)
        # The scheduler cancels this run at the job deadline (its items are then `missing`); the
        # stages' own deadline is set past it so they do not fail the items first.
        ctx = run_context(job, settings, deadline_s=max(0.0, remaining_s) + LOCAL_GRACE_S)
        run = await run_pipeline(
            job.pipeline,
            job.items,
            ctx,
            load=not coordinator_loads,
            keep_records=coordinator_loads,
        )
        return ChunkResult(
            run.results,
            run.errors,
            run.records if coordinator_loads else None,
            run.load_stats,
            run.timings_s,
        )

    return run_local


async def coordinate(
    parsed: ParsedJob,
    settings: Settings,
    job: dict[str, Any],
    *,
    client: EndpointClient | None = None,
) -> dict[str, Any]:
    """Run `parsed` as a coordinator job; returns the job's output dict (partial at the deadline).
    `client` is for tests that bring their own transport; by default one is built from settings."""
    t0 = time.perf_counter()
    deadline_s = time.monotonic() + settings.request_timeout
    env = parsed.envelope
    workers = effective_workers(parsed, settings)
    sizes = chunk_sizes(len(parsed.items), workers, settings.chunk_size)
    chunks = chunk_job(parsed, sizes, settings.chunk_order)
    coordinator_loads = settings.load_mode == "coordinator"
    item_ids = [parsed.pipeline.item_id(i) for i in parsed.items]
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
        cleanup_stats = await _cleanup_before_fanout(parsed, settings)

    own_client = client is None
    client = client or EndpointClient.from_settings(settings)
    policy = Policy(
        execution_timeout_s=settings.sibling_execution_timeout_s, ttl_s=settings.sibling_ttl_s
    )
    pool = SiblingPool(
        client, parsed, policy, stats, return_records=coordinator_loads, cleanup=False
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
        deadline_s=deadline_s,
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
        run = PipelineRun(merger.results, merger.ordered_errors(), merger.records or [])
        ctx = run_context(parsed, settings)
        load = await load_records(parsed.pipeline, run.records, item_ids, run, ctx)
        for err in run.errors:  # a failed load fails the items it held
            merger.errors.setdefault(err.item_id, err)
    elif cleanup_stats and load is not None:
        load["cleaned"] = load.get("cleaned", 0) + cleanup_stats.get("cleaned", 0)

    timings = dict(merger.timings_s)
    timings["coordinate"] = round(time.perf_counter() - t0, 4)
    return job_output(
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
