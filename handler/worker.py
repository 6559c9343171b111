"""Worker mode: run the job's pipeline here, over its items, with this process's warm resources."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from podfleet.envelope import ParsedJob
from podfleet.output import run_output
from podfleet.pipeline.config import InferConfig, PipelineConfig, ScrapeConfig, StoreConfig
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.runner import PipelineRun, ProgressFn, load_records, run_pipeline
from podfleet.pipeline.stage import RunContext
from podfleet.settings import Settings

__all__ = [
    "RESOURCES",
    "pipeline_config",
    "run_context",
    "run_here",
    "run_worker",
    "stage_progress",
]

# One set per process: the browser and the model outlive a job (warm worker).
RESOURCES = WarmResources()


def pipeline_config(settings: Settings) -> PipelineConfig:
    s = settings
    return PipelineConfig(
        scrape=ScrapeConfig(
            executable_path=s.chromium_path,
            concurrency=s.scrape_concurrency,
            per_domain_concurrency=s.scrape_per_domain_concurrency,
            retries=s.scrape_retries,
            block_resources=s.scrape_block_resources,
            wait=s.scrape_wait,
            quiet_window_ms=s.scrape_quiet_window_ms,
            user_agent=s.scrape_user_agent,
            respect_robots=s.scrape_respect_robots,
            allow_hosts=tuple(s.scrape_allow_hosts),
            max_page_bytes=s.scrape_max_page_bytes,
            navigation_timeout_s=s.navigation_timeout_s,
            render_timeout_s=s.render_timeout_s,
            stage_timeout_s=s.scrape_timeout_s,
        ),
        infer=InferConfig(
            model_name=s.model_name,
            device=s.infer_device,
            precision=s.infer_precision,
            token_budget=s.infer_token_budget,
            timeout_s=s.gpu_timeout,
            near_duplicate_threshold=s.near_duplicate_threshold,
        ),
        store=StoreConfig(database_url=s.database_url.get_secret_value(), retry_s=s.db_retry_s),
    )


def run_context(parsed: ParsedJob, settings: Settings, deadline: Deadline) -> RunContext:
    env = parsed.envelope
    return RunContext(
        job_id=parsed.job_id,
        config=pipeline_config(settings),
        resources=RESOURCES,
        options=parsed.options,
        date=env.date,
        trigger=env.trigger,
        cleanup=env.cleanup,
        deadline=deadline,
        worker_id=settings.runpod_pod_id or "local",
        attempt=parsed.attempt,
    )


async def run_here(
    parsed: ParsedJob,
    settings: Settings,
    deadline: Deadline,
    *,
    load: bool = True,
    keep_records: bool = False,
    progress: ProgressFn | None = None,
    load_only: PipelineRun | None = None,
) -> PipelineRun:
    """Run `parsed` (a whole job or one chunk of one) in this process, by `deadline`: its stages
    over its items, then its load unless `load` is false. With `load_only` (a run made
    elsewhere: a coordinator's merged siblings, or an empty one for a cleanup), only the load, of
    `load_only`'s records; its results drop for items whose load failed. Everything that runs
    work here (worker mode, a coordinator's local chunks, its cleanup and its final load) calls
    this."""
    ctx = run_context(parsed, settings, deadline)
    if load_only is None:
        return await run_pipeline(
            parsed.pipeline,
            parsed.items,
            ctx,
            load=load,
            keep_records=keep_records,
            progress=progress,
            item_ids=parsed.item_ids,
        )
    ids = list(parsed.item_ids)
    run = load_only
    run.load_stats = await load_records(parsed.pipeline, run.records, ids, run, ctx)
    return run


def stage_progress(parsed: ParsedJob, settings: Settings) -> ProgressFn:
    """Publish the pipeline's per-stage progress with `runpod.serverless.progress_update`
    (inside the RunPod worker loop only; throttled to one post a second, the first at once)."""
    from podfleet.coordinator.progress import ProgressPublisher  # the package imports us

    publisher = ProgressPublisher({"id": parsed.job_id}, enabled=settings.on_runpod)
    first = True

    def publish(data: dict[str, Any]) -> None:
        nonlocal first
        if data.get("stage") == "done":
            return  # the result follows at once; a progress post would arrive after it
        publisher.update(data, force=first)
        first = False

    return publish


async def run_worker(
    parsed: ParsedJob, settings: Settings, deadline: Deadline | None = None
) -> dict[str, Any]:
    """Worker mode: the whole job here, by `deadline` (default: REQUEST_TIMEOUT from now)."""
    t0 = time.perf_counter()
    sibling = parsed.envelope.sibling
    return_records = bool(sibling and sibling.return_records)
    run = await run_here(
        parsed,
        settings,
        deadline or Deadline.after(settings.request_timeout),
        load=not return_records,
        keep_records=return_records,
        progress=stage_progress(parsed, settings),
    )
    for result in run.results:
        if result is not None and "id" in result:
            logger.info("completed {} item {}", parsed.pipeline.name, result["id"])
    for state_error in run.errors:
        logger.warning(
            "item {} failed in {}: {}", state_error.item_id, state_error.stage, state_error.message
        )
    done = sum(r is not None for r in run.results)
    logger.info("worker completed {}/{} items of {}", done, len(run.results), parsed.pipeline.name)
    out = run_output(parsed, run, mode="worker", workers=1, duration_s=time.perf_counter() - t0)
    return out.to_output()
