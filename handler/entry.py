"""The RunPod handler: parse the job, pick the mode, run it, turn everything into output."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from podfleet.envelope import ParsedJob, job_id_of, parse_job, with_sibling_policy
from podfleet.modes import choose_mode
from podfleet.output import error_output
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.errors import FatalWorkerError, InputError, JobFailure
from podfleet.settings import Settings, load_settings
from podfleet.worker import run_worker

__all__ = ["bound_handler", "check_load_mode", "handler", "job_deadline"]


def job_deadline(parsed: ParsedJob, started: Deadline) -> Deadline:
    """The job's one deadline: REQUEST_TIMEOUT from its start (`started`), or the parent's,
    if earlier, for a sibling (`sibling.deadline_at`; absent from older coordinators')."""
    sibling = parsed.envelope.sibling
    if sibling is None or sibling.deadline_at is None:
        return started
    return started.earliest(Deadline.at_epoch(sibling.deadline_at))


def check_load_mode(parsed: ParsedJob, mode: str, settings: Settings) -> None:
    """Items by reference fan out only where siblings load: with LOAD_MODE=coordinator every
    sibling would return its records and the coordinator hold all of them (a worker-mode job
    of its own loads its rows itself, and may)."""
    if parsed.envelope.items_from is None or settings.load_mode != "coordinator":
        return
    if mode == "coordinator" or parsed.envelope.sibling is not None:
        raise InputError(
            "items_from",
            "invalid input: items_from: needs LOAD_MODE=sibling: a coordinator would hold every "
            "record (this endpoint has LOAD_MODE=coordinator; send the items inline, or run the "
            "job in mode 'worker')",
        )


def bound_handler(settings: Settings) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """`handler` with the process's settings, read once at start-up: what the SDK is given."""

    async def handle(job: dict[str, Any]) -> dict[str, Any]:
        return await handler(job, settings)

    return handle


async def handler(job: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Async so that RunPod's loop keeps polling while CPU/GPU work runs in threads.
    `settings`: the process's (`bound_handler`); read from the environment now when not given
    (a direct call, e.g. from a test)."""
    settings = settings or load_settings()
    started = Deadline.after(settings.request_timeout)  # the edge: the deadline starts here
    job_id = job_id_of(job)
    with logger.contextualize(job_id=job_id):
        t0 = time.perf_counter()
        try:
            parsed = with_sibling_policy(parse_job(job), settings.load_mode)
            mode = choose_mode(parsed, settings)
            check_load_mode(parsed, mode, settings)
            deadline = job_deadline(parsed, started)
            logger.info(
                "job started: pipeline={} mode={} items={}",
                parsed.pipeline.name,
                mode,
                # by reference: counted once read (worker) or planned (coordinator)
                "items_from" if parsed.envelope.items_from else len(parsed.items),
            )
            if mode == "coordinator":
                from podfleet.coordinator import coordinate  # no torch/playwright on this path

                out = await coordinate(parsed, settings, job, deadline=deadline)
            else:
                out = await run_worker(parsed, settings, deadline)
        except InputError as exc:
            logger.warning("rejected job: {}", exc)
            return error_output(str(exc))
        except JobFailure as exc:
            logger.error("job failed: {}", exc)
            return error_output(str(exc))
        except FatalWorkerError as exc:
            logger.error("worker unfit, asking for a refresh: {}", exc)
            return error_output(f"worker error: {exc}", refresh_worker=True)
        except Exception as exc:  # never crash the worker loop; never leak a traceback
            logger.opt(exception=exc).error("unexpected error")
            return error_output(f"internal error: {type(exc).__name__}: {exc}")
        logger.info(
            "job finished in {:.2f}s: ok={} succeeded={}/{}",
            time.perf_counter() - t0,
            out.get("ok"),
            out.get("succeeded"),
            out.get("items"),
        )
        return out
