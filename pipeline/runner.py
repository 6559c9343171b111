"""Runs a pipeline's stages over a job's items with per-item isolation and per-stage timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from podfleet.pipeline.errors import FatalWorkerError, JobFailure, StageTimeout
from podfleet.pipeline.stage import ItemError, ItemState, Pipeline, RunContext
from podfleet.pipeline.translate import translate

__all__ = ["PipelineRun", "load_records", "run_pipeline"]

ProgressFn = Callable[[dict[str, Any]], Any]
"""Called with {"stage", "stages_done", "stages_total", "items_total", "items_failed"} before
each stage and once at the end (stage "done"). Pure: the caller decides where it goes."""


def _report(
    progress: ProgressFn | None, stage: str, done: int, total: int, items: int, failed: int
) -> None:
    if progress is None:
        return
    try:
        progress(
            {
                "stage": stage,
                "stages_done": done,
                "stages_total": total,
                "items_total": items,
                "items_failed": failed,
            }
        )
    except Exception as exc:  # progress is best effort: never fail the items for it
        logger.warning("progress callback failed: {}", exc)


@dataclass
class PipelineRun:
    """What a worker produces: one slot per input item, in input order."""

    results: list[dict[str, Any] | None]
    errors: list[ItemError]
    records: list[dict[str, Any] | None]
    timings_s: dict[str, float] = field(default_factory=dict)
    load_stats: dict[str, Any] | None = None


async def run_pipeline(
    pipeline: Pipeline,
    items: Sequence[Any],
    ctx: RunContext,
    *,
    load: bool = True,
    keep_records: bool = False,
    progress: ProgressFn | None = None,
    item_ids: Sequence[str] | None = None,
) -> PipelineRun:
    """Run every stage over `items`; a failing item is `None` in `results` and listed in `errors`.

    `item_ids`: `pipeline.item_id` of each item, when the caller has them already.

    `progress` (optional) hears about each stage as it starts, and the end (see `ProgressFn`).

    `FatalWorkerError` is not contained: it means the process is unfit and propagates.
    """
    if ctx.settings is None:
        ctx.settings = pipeline.settings()  # the pipeline's own (prefixed) environment settings
    states: list[ItemState] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ids = list(item_ids) if item_ids is not None else [pipeline.item_id(i) for i in items]
    for index, (item, item_id) in enumerate(zip(items, ids, strict=True)):
        try:
            work = pipeline.start(item, ctx)
        except Exception as exc:
            state = ItemState(index, item_id, None)
            err = translate(exc, "start")
            state.fail("start", str(err), retryable=getattr(err, "retryable", False))
        else:
            state = ItemState(index, item_id, work)
        states.append(state)
    timings["start"] = round(time.perf_counter() - t0, 4)

    n_stages = len(pipeline.stages) + (1 if load and pipeline.load is not None else 0)
    for k, stage in enumerate(pipeline.stages):
        live = [s for s in states if s.alive]
        if not live:
            break
        _report(progress, stage.name, k, n_stages, len(states), len(states) - len(live))
        t_stage = time.perf_counter()
        try:
            async with asyncio.timeout(ctx.remaining_s()):
                await stage.run(live, ctx)
        except (FatalWorkerError, JobFailure):
            raise
        except TimeoutError:
            err = StageTimeout("job deadline reached", stage=stage.name)
            for s in live:
                s.fail(stage.name, err.message, retryable=True)
        except Exception as exc:
            err = translate(exc, stage.name)
            if isinstance(err, FatalWorkerError):
                raise err from exc
            logger.warning("stage {} failed for {} items: {}", stage.name, len(live), err)
            for s in live:
                s.fail(stage.name, str(err), retryable=getattr(err, "retryable", False))
        timings[stage.name] = round(time.perf_counter() - t_stage, 4)

    results: list[dict[str, Any] | None] = []
    records: list[dict[str, Any] | None] = []
    for s in states:
        if s.alive:
            try:
                results.append(pipeline.finish(s.work, ctx))
                records.append(pipeline.record(s.work) if pipeline.record else None)
                continue
            except Exception as exc:
                s.fail("finish", str(translate(exc, "finish")))
        results.append(None)
        records.append(None)

    run = PipelineRun(results, [s.error for s in states if s.error], records, timings)
    if load and pipeline.load is not None:
        failed = sum(not s.alive for s in states)
        _report(progress, "load", len(pipeline.stages), n_stages, len(states), failed)
        t_load = time.perf_counter()
        run.load_stats = await load_records(
            pipeline, records, [s.item_id for s in states], run, ctx
        )
        timings["load"] = round(time.perf_counter() - t_load, 4)
    if not keep_records:
        run.records = [None] * len(records)
    failed = sum(r is None for r in run.results)
    _report(progress, "done", n_stages, n_stages, len(states), failed)
    return run


async def load_records(
    pipeline: Pipeline,
    records: list[dict[str, Any] | None],
    item_ids: list[str],
    run: PipelineRun,
    ctx: RunContext,
) -> dict[str, Any] | None:
    """Store the live items' records; a load failure fails those items (their results drop).

    A load that could store some items but not others returns stats with `item_errors`
    ({item id: {"message", "retryable"}}): only those items fail.
    """
    present = [r for r in records if r is not None]
    if pipeline.load is None or (not present and not ctx.cleanup):
        return None
    try:
        stats = await asyncio.to_thread(pipeline.load, present, ctx)
        if isinstance(stats, dict) and stats.get("item_errors"):
            stats = dict(stats)
            failed: dict[str, Any] = stats.pop("item_errors")
            for i, record in enumerate(records):
                if record is not None and item_ids[i] in failed:
                    entry = failed[item_ids[i]]
                    run.results[i] = None
                    run.errors.append(
                        ItemError(
                            item_ids[i], "load", entry["message"], bool(entry.get("retryable"))
                        )
                    )
        return stats
    except Exception as exc:
        err = translate(exc, "load")
        if isinstance(err, FatalWorkerError):
            raise err from exc
        logger.error("load failed: {}", err)
        for i, record in enumerate(records):
            if record is not None:
                run.results[i] = None
                run.errors.append(
                    ItemError(item_ids[i], "load", str(err), getattr(err, "retryable", False))
                )
        return {"error": str(err)}
