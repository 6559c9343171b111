"""Coordinator mode: fan a job's items out to sibling jobs on the endpoint, work on chunks here
meanwhile, and merge everything back in input order (docs/coordinator.md)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from loguru import logger
from podfleet.api import EndpointClient, Policy
from podfleet.claim import claim_chunk, finish_chunk, skipped_output
from podfleet.coordinator.chunks import (
    Chunk,
    FanoutInfo,
    chunk_job,
    chunk_sizes,
    local_job,
    ref_chunks,
)
from podfleet.coordinator.merge import Merger
from podfleet.coordinator.progress import ProgressPublisher
from podfleet.coordinator.resume import open_ledger, resume_fanout
from podfleet.coordinator.scheduler import LocalRunner, Scheduler, SchedulerConfig
from podfleet.coordinator.siblings import SiblingPool
from podfleet.coordinator.stats import FanoutStats
from podfleet.coordinator.tally import MAX_ERRORS, Tally, position_id
from podfleet.envelope import ParsedJob
from podfleet.materialize import materialize_rows, splice
from podfleet.modes import effective_workers
from podfleet.output import JobOutput, job_output, run_output
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.runner import PipelineRun
from podfleet.settings import Settings
from podfleet.worker import run_here

__all__ = ["coordinate"]

LOCAL_GRACE_S = 30.0


def _local_runner(
    parsed: ParsedJob, settings: Settings, fanout: FanoutInfo, *, coordinator_loads: bool
) -> LocalRunner:
    """Runs a chunk in this process as its sibling would: claimed in the ledger first (claimant
    `<job id>:local`; refused, it returns skipped), rows read for a chunk by reference, the
    outcome written to the ledger."""
    claimant = f"{parsed.job_id}:local"

    async def run_local(chunk: Chunk, deadline: Deadline) -> JobOutput:
        t0 = time.perf_counter()
        job = local_job(parsed, chunk, return_records=coordinator_loads, fanout=fanout)
        claim = await claim_chunk(job, settings, claimant=claimant)
        if claim is not None and not claim.granted:
            return JobOutput.model_validate(skipped_output(job, claim))
        rows = await materialize_rows(job, settings) if chunk.ref is not None else None
        if rows is not None:
            job = rows.job
        # The scheduler cancels this run at the job deadline (its items are then `missing`); the
        # stages' own deadline is set past it so they do not fail the items first.
        run = await run_here(
            job,
            settings,
            deadline.plus(LOCAL_GRACE_S),
            load=not coordinator_loads,
            keep_records=coordinator_loads,
        )
        if rows is not None:
            run = splice(run, rows)
        duration_s = time.perf_counter() - t0
        out = run_output(job, run, mode="worker", workers=1, duration_s=duration_s)
        await finish_chunk(job, settings, out.to_output(), claimant=claimant)
        return out

    return run_local


async def _plan(parsed: ParsedJob, settings: Settings, workers: int) -> tuple[int, list[Chunk]]:
    """(item count, chunks): inline items dealt in CHUNK_ORDER; rows of `items_from` planned
    into contiguous ranges (the source is scanned, never held)."""
    source = parsed.envelope.items_from
    if source is None:
        sizes = chunk_sizes(len(parsed.items), workers, settings.chunk_size)
        return len(parsed.items), chunk_job(parsed, sizes, settings.chunk_order)
    from podfleet.sources import plan_source

    def sizes_for(n: int) -> list[int]:
        return chunk_sizes(n, workers, settings.chunk_size)

    n_items, refs = await plan_source(source, settings, sizes_for)
    return n_items, ref_chunks(refs)


def _stream_entries(
    chunk: Chunk, result: JobOutput, item_ids: list[str] | None
) -> list[dict[str, Any]]:
    """/stream entries of an accepted chunk: one per item (`index`: its input position). A
    chunk whose results stay in the ledger streams its errors only."""

    def error(err: Any) -> dict[str, Any]:
        return {"stage": err.stage, "message": err.message, "retryable": err.retryable}

    errors = {e.item_id: e for e in result.errors}
    if not result.results:  # by reference, results in the ledger
        return [
            {"index": int(e.item_id[1:]) if e.item_id[1:].isdigit() else None, "id": e.item_id}
            | {"error": error(e)}
            for e in result.errors
        ]
    unnamed = iter([e for e in result.errors if not e.item_id.startswith("#")])
    entries = []
    for offset, slot in enumerate(result.results):
        p = chunk.positions[offset]
        if item_ids is not None:
            item_id = item_ids[p]
        else:
            item_id = str(slot.get("id", position_id(p))) if slot else position_id(p)
        if slot is not None:
            entries.append({"index": p, "id": item_id, "result": slot})
            continue
        err = errors.get(item_id) or next(unnamed, None)
        if err is not None:
            entries.append({"index": p, "id": err.item_id, "error": error(err)})
    return entries


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
    transport; by default one is built from settings. A fan-out already in the chunk ledger
    (the same job id or run_key) resumes where it stopped."""
    t0 = time.perf_counter()
    deadline = deadline or Deadline.after(settings.request_timeout)
    env = parsed.envelope
    workers = effective_workers(parsed, settings)
    by_ref = env.items_from is not None
    ledger, stored_rows, n_items, chunks = await open_ledger(
        parsed, settings, lambda: _plan(parsed, settings, workers)
    )
    # Without a ledger the siblings' results can only travel in their outputs: keep them.
    results_inline = not by_ref or n_items <= settings.inline_results_max_items
    results_inline = results_inline or not ledger.enabled
    fanout = FanoutInfo(ledger.fanout_id, results_inline)
    coordinator_loads = settings.load_mode == "coordinator"
    item_ids = None if by_ref else list(parsed.item_ids)
    sizes = [c.size for c in chunks]
    stats = FanoutStats(
        chunks=len(chunks),
        chunk_size=max(sizes),
        chunk_plan="fixed" if settings.chunk_size > 0 else "guided",
        fanout_id=ledger.fanout_id,
        resumed=stored_rows is not None,
    )
    merger: Merger | Tally = (
        Tally(n_items, keep_results=results_inline)
        if by_ref
        else Merger(list(parsed.item_ids), keep_records=coordinator_loads)
    )
    logger.info(
        "coordinating {} items in {} chunks of {}..{} over {} workers (load by {})",
        n_items,
        len(chunks),
        max(sizes),
        min(sizes),
        workers,
        settings.load_mode,
    )

    cleanup_stats = None
    sibling_load = not coordinator_loads and parsed.pipeline.load is not None
    if env.cleanup and sibling_load and stored_rows is None:
        # Sibling load mode with cleanup: the date's rows are deleted once, here, before any
        # sibling loads (the pipeline's own load, with no records and cleanup on). Never again
        # on a resume: it would delete what the finished chunks loaded.
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
        fanout=fanout,
    )
    progress = ProgressPublisher(job, enabled=settings.on_runpod)
    stream = _result_stream(job, settings)

    def on_accept(chunk: Chunk, result: JobOutput) -> None:
        if stream is not None:
            stream.add(_stream_entries(chunk, result, item_ids))

    def publish() -> None:
        if len(merger.finished) == len(chunks):
            return  # the result follows at once; a last progress post would arrive after it
        progress.update(
            {
                "items_done": merger.items_done,
                "items_total": n_items,
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
        results_inline=results_inline,
    )
    runner = _local_runner(parsed, settings, fanout, coordinator_loads=coordinator_loads)
    try:
        if stored_rows is not None:
            stats.chunks_reused = await resume_fanout(
                stored_rows,
                chunks,
                ledger,
                pool,
                merger,
                want_records=coordinator_loads,
                results_inline=results_inline,
                on_accept=on_accept,
            )
        scheduler = Scheduler(
            chunks, pool, merger, stats, config, runner, publish, ledger=ledger, on_accept=on_accept
        )
        await scheduler.run()
    finally:
        if own_client:
            await client.aclose()
        if stream is not None:
            await stream.aclose()

    missing_positions: list[int] = []
    for chunk in scheduler.unfinished_chunks():
        if not by_ref:
            missing_positions.extend(chunk.positions)
        elif len(missing_positions) <= MAX_ERRORS:  # capped: `#<position>` ids
            missing_positions.extend(chunk.positions[: MAX_ERRORS + 1])
        merger.fail(chunk, "coordinator", "no result before the job deadline", retryable=True)
    summary = await ledger.close("done" if not missing_positions else "")
    stats.duplicates_refused = int(summary.get("duplicates", 0))

    load = merger.load_summary()
    if coordinator_loads and parsed.pipeline.load is not None and isinstance(merger, Merger):
        # The job's own deadline, not a fresh budget: a load that checks it knows how late it is.
        merged = PipelineRun(merger.results, merger.ordered_errors(), merger.records or [])
        run = await run_here(parsed, settings, deadline, load_only=merged)
        load = run.load_stats
        for err in run.errors:  # a failed load fails the items it held
            merger.errors.setdefault(err.item_id, err)
    elif cleanup_stats and load is not None:
        load["cleaned"] = load.get("cleaned", 0) + cleanup_stats.get("cleaned", 0)

    errors = merger.ordered_errors()
    stats.errors_total = merger.errors_total if isinstance(merger, Tally) else len(errors)
    timings = dict(merger.timings_s)
    timings["coordinate"] = round(time.perf_counter() - t0, 4)
    if by_ref:
        missing = [position_id(p) for p in sorted(missing_positions)[:MAX_ERRORS]]
    else:
        missing = [parsed.item_ids[p] for p in sorted(missing_positions)]
    out = job_output(
        parsed,
        mode="coordinator",
        workers=workers,
        duration_s=time.perf_counter() - t0,
        results=merger.results,
        errors=errors,
        timings_s=timings,
        load=load,
        fanout=stats.to_dict(),
        missing=missing,
    )
    if isinstance(merger, Tally):
        out.items, out.succeeded = n_items, merger.succeeded
        if not results_inline:
            out.results_at = _results_at(ledger.fanout_id, settings)
    return out.to_output()


def _result_stream(job: dict[str, Any], settings: Settings) -> Any:
    """The job's /stream of per-item results (`podfleet.coordinator.stream`), or None."""
    try:
        from podfleet.coordinator.stream import ResultStream
    except ImportError:
        return None
    return ResultStream(job, enabled=settings.on_runpod and settings.stream_results)


def _results_at(fanout_id: str | None, settings: Settings) -> dict[str, Any]:
    from podfleet.pipeline.store.db import redact_url
    from podfleet.pipeline.store.ledger import CHUNKS_TABLE

    url = redact_url(settings.database_url.get_secret_value())
    return {"ledger": CHUNKS_TABLE, "fanout_id": fanout_id, "database": url}
