"""podfleet: a framework for RunPod serverless workers. This is its public import surface.

A project's `handler.py`:

    from podfleet import serve
    serve()

its pipelines (docs/pipelines.md):

    from podfleet import ItemState, Pipeline, RunContext, register

and a caller's side: `from podfleet import SyncEndpointClient`. Testing offline: the pytest plugin
`podfleet.testing` and the emulator (`EmulatorConfig`, `run_emulator`, `run_in_process`).

Every name is imported on first use (module `__getattr__`), so `import podfleet` stays light: it
never imports torch, Playwright, SQLAlchemy or the RunPod SDK by itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # writing a pipeline
    "ItemError": "podfleet.pipeline.stage",
    "ItemState": "podfleet.pipeline.stage",
    "Pipeline": "podfleet.pipeline.stage",
    "PipelineSettingsError": "podfleet.pipeline.stage",
    "RunContext": "podfleet.pipeline.stage",
    "Stage": "podfleet.pipeline.stage",
    "Resource": "podfleet.pipeline.resources",
    "WarmResources": "podfleet.pipeline.resources",
    "PipelineConfig": "podfleet.pipeline.config",
    "register": "podfleet.pipeline.registry",
    "get_pipeline": "podfleet.pipeline.registry",
    "known_pipelines": "podfleet.pipeline.registry",
    "required_resources": "podfleet.pipeline.registry",
    "DuplicatePipelineError": "podfleet.pipeline.registry",
    "PipelineRun": "podfleet.pipeline.runner",
    "run_pipeline": "podfleet.pipeline.runner",
    # errors a stage raises or translates to
    "PodfleetError": "podfleet.pipeline.errors",
    "InputError": "podfleet.pipeline.errors",
    "StageError": "podfleet.pipeline.errors",
    "StageTimeout": "podfleet.pipeline.errors",
    "FatalWorkerError": "podfleet.pipeline.errors",
    "JobFailure": "podfleet.pipeline.errors",
    # running as a RunPod worker
    "serve": "podfleet.serving",
    "handler": "podfleet.entry",
    "Settings": "podfleet.settings",
    "load_settings": "podfleet.settings",
    # calling an endpoint
    "EndpointClient": "podfleet.api",
    "SyncEndpointClient": "podfleet.api",
    "JobState": "podfleet.api",
    "JobStatus": "podfleet.api",
    "Policy": "podfleet.api",
    "ApiError": "podfleet.api",
    # the local emulator
    "EmulatorConfig": "podfleet.emulator",
    "FaultConfig": "podfleet.emulator",
    "Emulator": "podfleet.emulator",
    "InProcessEmulator": "podfleet.emulator",
    "run_emulator": "podfleet.emulator",
    "run_in_process": "podfleet.emulator",
}

__all__ = [
    "ApiError",
    "DuplicatePipelineError",
    "Emulator",
    "EmulatorConfig",
    "EndpointClient",
    "FatalWorkerError",
    "FaultConfig",
    "InProcessEmulator",
    "InputError",
    "ItemError",
    "ItemState",
    "JobFailure",
    "JobState",
    "JobStatus",
    "Pipeline",
    "PipelineConfig",
    "PipelineRun",
    "PipelineSettingsError",
    "PodfleetError",
    "Policy",
    "Resource",
    "RunContext",
    "Settings",
    "Stage",
    "StageError",
    "StageTimeout",
    "SyncEndpointClient",
    "WarmResources",
    "get_pipeline",
    "handler",
    "known_pipelines",
    "load_settings",
    "register",
    "required_resources",
    "run_emulator",
    "run_in_process",
    "run_pipeline",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'podfleet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see; never executed
    from podfleet.api import (
        ApiError,
        EndpointClient,
        JobState,
        JobStatus,
        Policy,
        SyncEndpointClient,
    )
    from podfleet.emulator import (
        Emulator,
        EmulatorConfig,
        FaultConfig,
        InProcessEmulator,
        run_emulator,
        run_in_process,
    )
    from podfleet.entry import handler
    from podfleet.pipeline.config import PipelineConfig
    from podfleet.pipeline.errors import (
        FatalWorkerError,
        InputError,
        JobFailure,
        PodfleetError,
        StageError,
        StageTimeout,
    )
    from podfleet.pipeline.registry import (
        DuplicatePipelineError,
        get_pipeline,
        known_pipelines,
        register,
        required_resources,
    )
    from podfleet.pipeline.resources import Resource, WarmResources
    from podfleet.pipeline.runner import PipelineRun, run_pipeline
    from podfleet.pipeline.stage import (
        ItemError,
        ItemState,
        Pipeline,
        PipelineSettingsError,
        RunContext,
        Stage,
    )
    from podfleet.serving import serve
    from podfleet.settings import Settings, load_settings
