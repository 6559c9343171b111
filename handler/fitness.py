"""Start-up fitness checks (`runpod.serverless.register_fitness_check`): a worker that cannot run
its pipelines exits before it takes a job.

The SDK (1.12.0) runs registered checks only in its production job loop (`run_worker`), before
its first job-take, never in the one-shot `--test_input`/`test_input.json` mode nor the
`--rp_serve_api` server, and kills the process (os._exit(1)) when one raises.

What is checked follows what the registered pipelines declare (`Pipeline.resources`, their union
from `podfleet.pipeline.registry.required_resources()`): the model is loaded (into the same
`RESOURCES` jobs use, so it is the first job's load moved earlier, not extra work) and encodes one
sentence on the configured device only when some registered pipeline uses it. A worker whose
pipelines use no model never imports torch. INFER_FITNESS_CHECK=false turns the model check off
(an endpoint that only coordinates).

To shorten the cold start, `start_warm_up` begins that load in a background thread as soon as
the process starts, while the SDK and the handler import; the registered check then waits for it
and raises its error, so the guarantee is the same: no job-take before the model has encoded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

from loguru import logger
from podfleet.pipeline.resources import Resource
from podfleet.settings import Settings, load_settings

__all__ = [
    "model_fitness_check",
    "register_checks",
    "required_resources",
    "start_warm_up",
    "startup_resources",
]

_warm_up: concurrent.futures.Future[None] | None = None
_check_settings: Settings | None = None  # the process's, given to register_checks


def required_resources() -> frozenset[Resource]:
    """The warm resources the registered pipelines declare (registry discovery runs here)."""
    from podfleet.pipeline.registry import required_resources as registered

    return registered()


def startup_resources(
    settings: Settings, required: frozenset[Resource] | None = None
) -> frozenset[Resource]:
    """What the fitness check prepares before the first job-take (today: the model or nothing)."""
    required = required_resources() if required is None else required
    out: set[Resource] = set()
    if settings.infer_fitness_check and Resource.MODEL in required:
        out.add(Resource.MODEL)
    return frozenset(out)


async def _warm_model(settings: Settings) -> None:
    from podfleet.pipeline.infer import warm_up
    from podfleet.worker import RESOURCES, pipeline_config

    t0 = time.perf_counter()
    await warm_up(pipeline_config(settings).infer, RESOURCES)
    logger.info("fitness: model warm in {:.2f}s", time.perf_counter() - t0)


def start_warm_up(settings: Settings, required: frozenset[Resource] | None = None) -> bool:
    """Start loading what the check needs in a background thread now; True if one started.

    Call it only where the SDK will run its job loop (the check awaits the result); elsewhere
    the load would be wasted work.
    """
    global _warm_up
    if _warm_up is not None:
        return True
    if Resource.MODEL not in startup_resources(settings, required):
        return False
    # podfleet's own modules are imported here, in the main thread, so that the thread imports
    # only the model's libraries (torch, transformers), which the main thread never does.
    import podfleet.pipeline.infer
    import podfleet.worker  # noqa: F401

    future: concurrent.futures.Future[None] = concurrent.futures.Future()

    def run() -> None:
        try:
            asyncio.run(_warm_model(settings))
        except BaseException as exc:  # handed to the check, which fails the worker
            future.set_exception(exc)
        else:
            future.set_result(None)

    threading.Thread(target=run, name="podfleet-warm-up", daemon=True).start()
    _warm_up = future
    return True


async def model_fitness_check() -> None:
    """Raises (and the SDK exits the worker) when the model cannot load or encode."""
    if _warm_up is not None:
        try:
            await asyncio.wrap_future(_warm_up)
            return
        except Exception as exc:
            if "deadlock detected" not in str(exc):
                raise
            # Two threads importing modules that import each other: Python refuses one import
            # ("deadlock detected by _ModuleLock", possibly wrapped by the model loader). The
            # main thread's imports are done now: load here instead.
            logger.warning("fitness: the background model load hit an import race; loading here")
            from podfleet.worker import RESOURCES

            RESOURCES.refresh_requested = False  # the failed attempt's flag; this one decides
    await _warm_model(_check_settings or load_settings())


def register_checks(
    settings: Settings | None = None, required: frozenset[Resource] | None = None
) -> list[str]:
    """Register this worker's fitness checks with the RunPod SDK; returns their names."""
    import runpod

    global _check_settings
    settings = _check_settings = settings or load_settings()  # the check runs with these
    names: list[str] = []
    if Resource.MODEL in startup_resources(settings, required):
        runpod.serverless.register_fitness_check(model_fitness_check)
        names.append(model_fitness_check.__name__)
    return names
