"""Pipelines by name. Registering a name twice fails at import; an unknown name lists the known."""

from __future__ import annotations

import importlib

from podfleet.pipeline.errors import InputError
from podfleet.pipeline.resources import Resource
from podfleet.pipeline.stage import Pipeline

__all__ = [
    "DuplicatePipelineError",
    "get_pipeline",
    "known_pipelines",
    "register",
    "required_resources",
]

_PIPELINES: dict[str, Pipeline] = {}
# Modules that register the built-in pipelines; imported on first lookup so that importing the
# registry stays cheap (a coordinator never needs torch or playwright).
_BUILTIN_MODULES = (
    "podfleet.pipeline.pipelines.flashpoints",
    "podfleet.pipeline.pipelines.synthetic",
)
_loaded = False


class DuplicatePipelineError(RuntimeError):
    pass


def register(pipeline: Pipeline) -> Pipeline:
    if pipeline.name in _PIPELINES:
        raise DuplicatePipelineError(f"pipeline {pipeline.name!r} is already registered")
    _PIPELINES[pipeline.name] = pipeline
    return pipeline


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def known_pipelines() -> list[str]:
    _load_builtins()
    return sorted(_PIPELINES)


def get_pipeline(name: str) -> Pipeline:
    _load_builtins()
    try:
        return _PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(_PIPELINES))
        raise InputError("pipeline", f"unknown pipeline {name!r}; known: {known}") from None


def required_resources() -> frozenset[Resource]:
    """The union of the warm resources the registered pipelines declare."""
    _load_builtins()
    out: frozenset[Resource] = frozenset()
    for pipeline in _PIPELINES.values():
        out |= pipeline.resources
    return out
