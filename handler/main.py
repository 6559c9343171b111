"""Process entry: configure logging, then hand the handler to RunPod's worker loop.

`runpod.serverless.start` picks its mode itself: `--test_input` or `./test_input.json` → one local
run (exit 0, or 1 on error); `RUNPOD_WEBHOOK_GET_JOB` set → the production job loop.

Cold start, in the job loop (docs/worker-loop.md): the model (when a registered pipeline needs
one) starts loading in a thread first, the SDK imports without its CPU probe meanwhile, and the
fitness check waits for the model before the SDK's first job-take.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["concurrency_modifier", "main", "runs_job_loop"]

# Flags with which the SDK runs something other than its job loop (runpod.serverless.start).
_NOT_JOB_LOOP_FLAGS = ("--test_input", "--rp_serve_api")


def runs_job_loop(webhook_get_job: str | None, argv: list[str]) -> bool:
    """Whether `runpod.serverless.start` will run its production job loop (and fitness checks)."""
    if not webhook_get_job:
        return False
    return not any(a == f or a.startswith(f + "=") for a in argv for f in _NOT_JOB_LOOP_FLAGS)


def main() -> None:
    from podfleet.logs import configure_logging
    from podfleet.settings import load_settings

    settings = load_settings()
    configure_logging(settings)

    from podfleet.fitness import register_checks, start_warm_up, startup_resources

    job_loop = runs_job_loop(settings.runpod_webhook_get_job, sys.argv[1:])
    prepared = startup_resources(settings)  # registry discovery: what the pipelines need
    if job_loop:
        start_warm_up(settings, prepared)  # overlaps the imports below

    from podfleet.sdk_import import import_sdk

    # Imported after settings: it reads RUNPOD_WEBHOOK_* at import time.
    runpod = import_sdk()
    from podfleet.entry import bound_handler
    from podfleet.worker_loop import install_worker_loop

    install_worker_loop(settings.worker_loop)
    register_checks(settings, prepared)
    runpod.serverless.start(
        {
            "handler": bound_handler(settings),
            "return_aggregate_stream": True,
            "concurrency_modifier": concurrency_modifier(settings.worker_concurrency),
        }
    )


def concurrency_modifier(jobs: int) -> Callable[[int], int]:
    """The SDK's `concurrency_modifier`: always `jobs` (WORKER_CONCURRENCY); never None, which
    would crash the SDK's loop."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"WORKER_CONCURRENCY: expected an integer >= 1, got {jobs!r}")

    def modifier(current: int) -> int:
        return jobs

    return modifier
