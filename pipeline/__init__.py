"""podfleet's pure library: stages, pipelines, and the parts they are made of.

Never imports `runpod`: it can be used and tested without RunPod. (The registry reads
PODFLEET_PIPELINES through `podfleet.settings` on its first lookup, unless `configure()` ran.)
"""

from podfleet.pipeline.config import InferConfig, PipelineConfig, ScrapeConfig, StoreConfig
from podfleet.pipeline.errors import (
    FatalWorkerError,
    InputError,
    PodfleetError,
    StageError,
    StageTimeout,
)
from podfleet.pipeline.registry import (
    get_pipeline,
    known_pipelines,
    register,
    required_resources,
)
from podfleet.pipeline.resources import Resource, WarmResources
from podfleet.pipeline.runner import PipelineRun, run_pipeline
from podfleet.pipeline.stage import ItemError, ItemState, Pipeline, RunContext, Stage

__all__ = [
    "FatalWorkerError",
    "InferConfig",
    "InputError",
    "ItemError",
    "ItemState",
    "Pipeline",
    "PipelineConfig",
    "PipelineRun",
    "PodfleetError",
    "Resource",
    "RunContext",
    "ScrapeConfig",
    "Stage",
    "StageError",
    "StageTimeout",
    "StoreConfig",
    "WarmResources",
    "get_pipeline",
    "known_pipelines",
    "register",
    "required_resources",
    "run_pipeline",
]
