"""Start-up fitness checks (`runpod.serverless.register_fitness_check`): a broken host exits
before it takes a job.

The SDK (1.12.0) runs registered checks only in its production job loop (`run_worker`), never in
the one-shot `--test_input`/`test_input.json` mode nor the `--rp_serve_api` server, and kills the
process (os._exit(1)) when one raises. So registering is free; the cost is paid only where a worker
is about to take real jobs.

Model check: loads the model into the process's warm resources (the same `RESOURCES` jobs use, so
it is the first job's load moved earlier, not extra work) and encodes one sentence on the
configured device (on CUDA this exercises the GPU kernels). A process cannot know whether it will
only coordinate, so an endpoint that only coordinates turns the check off with
INFER_FITNESS_CHECK=false and never imports torch.
"""

from __future__ import annotations

from podfleet.settings import Settings, load_settings

__all__ = ["model_fitness_check", "register_checks"]


async def model_fitness_check() -> None:
    """Raises (and the SDK exits the worker) when the model cannot load or encode."""
    from podfleet.pipeline.infer import warm_up
    from podfleet.worker import RESOURCES, pipeline_config

    await warm_up(pipeline_config(load_settings()).infer, RESOURCES)


def register_checks(settings: Settings | None = None) -> list[str]:
    """Register this worker's fitness checks with the RunPod SDK; returns their names."""
    import runpod

    settings = settings or load_settings()
    names: list[str] = []
    if settings.infer_fitness_check:
        runpod.serverless.register_fitness_check(model_fitness_check)
        names.append(model_fitness_check.__name__)
    return names
