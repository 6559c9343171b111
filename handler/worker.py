"""Worker mode: run the job's pipeline here, over its items, with this process's warm resources."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger
from podfleet.claim import claim_chunk, finish_chunk, skipped_output
from podfleet.envelope import ParsedJob
from podfleet.materialize import materialize, materialize_rows, splice
from podfleet.output import run_output
from podfleet.pipeline.config import InferConfig, PipelineConfig, ScrapeConfig, StoreConfig
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.runner import PipelineRun, ProgressFn, load_records, run_pipeline
from podfleet.pipeline.stage import RunContext
from podfleet.settings import Settings
from pydantic import BaseModel, SecretStr

__all__ = [
    "RESOURCES",
    "STAGE_SECTIONS",
    "materialize",
    "pipeline_config",
    "run_context",
    "run_here",
    "run_worker",
    "setting_for",
    "stage_progress",
]

# One set per process: the browser and the model outlive a job (warm worker).
RESOURCES = WarmResources()


# Stage configs from the settings by field name: field `f` of section `s` is set by the setting
# `s_f` or, failing that, `f`; the exceptions are the seeds' names (GPU_TIMEOUT, ...). Defaults
# live in the stage config models; tests/unit/test_settings.py checks that the settings' agree.
STAGE_SECTIONS: dict[str, type[BaseModel]] = {
    "scrape": ScrapeConfig,
    "infer": InferConfig,
    "store": StoreConfig,
}
_RENAMED = {
    ("scrape", "executable_path"): "chromium_path",
    ("scrape", "stage_timeout_s"): "scrape_timeout_s",
    ("infer", "timeout_s"): "gpu_timeout",
    ("store", "retry_s"): "db_retry_s",
}


def setting_for(section: str, field: str) -> str:
    """The name of the setting that configures `field` of the stage config `section`."""
    if (section, field) in _RENAMED:
        return _RENAMED[section, field]
    prefixed = f"{section}_{field}"
    return prefixed if prefixed in Settings.model_fields else field


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The stage configs, each field from its setting (`setting_for`); none is copied by hand."""
    return PipelineConfig.model_validate(
        {
            name: model.model_validate(
                {f: _plain(getattr(settings, setting_for(name, f))) for f in model.model_fields}
            )
            for name, model in STAGE_SECTIONS.items()
        }
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
    (inside the RunPod worker loop only; throttled to one post a second, the first at once).
    Not for a sibling: nobody reads its progress (its coordinator publishes the fan-out's), and
    for a short chunk the post arrives after its result (as many extra job-done posts as
    siblings, in the 100,000-item test)."""
    from podfleet.coordinator.progress import ProgressPublisher  # the package imports us

    enabled = settings.on_runpod and parsed.envelope.sibling is None
    publisher = ProgressPublisher({"id": parsed.job_id}, enabled=enabled)
    first = True

    def publish(data: dict[str, Any]) -> None:
        nonlocal first
        if data.get("stage") == "done":
            return  # the result follows at once; a progress post would arrive after it
        publisher.update(data, force=first)
        first = False

    return publish


def _results_at(parsed: ParsedJob, settings: Settings) -> dict[str, Any]:
    """Where a sibling's per-item results are when its output does not carry them."""
    from podfleet.pipeline.store.db import redact_url
    from podfleet.pipeline.store.ledger import CHUNKS_TABLE

    sibling = parsed.envelope.sibling
    return {
        "ledger": CHUNKS_TABLE,
        "fanout_id": sibling.fanout_id if sibling else None,
        "database": redact_url(settings.database_url.get_secret_value()),
    }


async def run_worker(
    parsed: ParsedJob, settings: Settings, deadline: Deadline | None = None
) -> dict[str, Any]:
    """Worker mode: the whole job here, by `deadline` (default: REQUEST_TIMEOUT from now).

    A protocol-2 sibling first claims its chunk attempt in the chunk ledger (`podfleet.claim`):
    refused, it returns at once, skipped, having done nothing. Items by reference are read and
    validated here (`podfleet.materialize`); a bad row fails alone. A granted sibling writes its
    whole outcome to the ledger before returning, and returns its per-item results only if
    `sibling.results_inline` (else `results_at` says where they are)."""
    t0 = time.perf_counter()
    claim = await claim_chunk(parsed, settings)
    if claim is not None and not claim.granted:
        return skipped_output(parsed, claim)
    rows = await materialize_rows(parsed, settings)
    job = rows.job
    if parsed.envelope.items_from is not None:
        logger.info(
            "read {} rows of items_from: {} items, {} rows failed validation",
            rows.rows,
            len(job.items),
            len(rows.errors),
        )
    sibling = job.envelope.sibling
    return_records = bool(sibling and sibling.return_records)
    run = await run_here(
        job,
        settings,
        deadline or Deadline.after(settings.request_timeout),
        load=not return_records,
        keep_records=return_records,
        progress=stage_progress(job, settings),
    )
    run = splice(run, rows)
    for result in run.results:
        if result is not None and "id" in result:
            logger.info("completed {} item {}", job.pipeline.name, result["id"])
    for state_error in run.errors:
        logger.warning(
            "item {} failed in {}: {}", state_error.item_id, state_error.stage, state_error.message
        )
    done = sum(r is not None for r in run.results)
    logger.info("worker completed {}/{} items of {}", done, len(run.results), job.pipeline.name)
    out = run_output(job, run, mode="worker", workers=1, duration_s=time.perf_counter() - t0)
    outcome = out.to_output()
    stored = await finish_chunk(job, settings, outcome)
    if sibling is None or sibling.results_inline:
        return outcome
    if not stored:  # the ledger does not have them: never lose results, return them after all
        logger.warning("chunk outcome not in the ledger: returning its results inline")
        return outcome
    return out.model_copy(
        update={"results": [], "results_at": _results_at(job, settings)}
    ).to_output()
