"""Pipelines by name, and how they are found.

Three ways a pipeline gets in, none of which edits this file:
- *built-in / template*: every module in `podfleet.pipeline.pipelines` (found with pkgutil, so a
  module dropped into `pipeline/pipelines/` of a checkout is found);
- *library*: a package's entry points in the group `podfleet.pipelines` (`name = "pkg.module"` or
  `"pkg.module:PIPELINE"`), and the modules named by `PODFLEET_PIPELINES` (comma-separated);
- *code*: `register(pipeline)` in any imported module (a user's `handler.py`, say).

Discovery runs once, on the first lookup, so importing the registry stays cheap (a coordinator
never needs torch or playwright). The same definition registered twice (a module imported both as
`__main__` and by name) is a no-op; two different pipelines with one name fail, naming both modules.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.resources import Resource
from podfleet.pipeline.stage import Pipeline

__all__ = [
    "ENTRY_POINT_GROUP",
    "DuplicatePipelineError",
    "PipelineImportError",
    "configure",
    "get_pipeline",
    "import_pipelines",
    "known_pipelines",
    "load_pipelines",
    "register",
    "registered_pipelines",
    "required_resources",
]

ENTRY_POINT_GROUP = "podfleet.pipelines"
BUILTIN_PACKAGE = "podfleet.pipeline.pipelines"


class DuplicatePipelineError(RuntimeError):
    pass


class PipelineImportError(RuntimeError):
    """A module named as holding pipelines (entry point or PODFLEET_PIPELINES) failed to import."""


@dataclass(frozen=True)
class _Origin:
    module: str
    file: str | None

    def same_as(self, other: _Origin) -> bool:
        if self.file and other.file:
            return os.path.realpath(self.file) == os.path.realpath(other.file)
        return self.module == other.module

    def __str__(self) -> str:
        return f"{self.module} ({self.file})" if self.file else self.module


_PIPELINES: dict[str, Pipeline] = {}
_ORIGINS: dict[str, _Origin] = {}
_builtins = True
_modules: tuple[str, ...] | None = None  # None: read PODFLEET_PIPELINES on first lookup
_loaded = False


def _caller_origin(depth: int) -> _Origin:
    frame: types.FrameType | None = sys._getframe(depth + 1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back  # registering on behalf of a module (entry point attribute)
    if frame is None:  # pragma: no cover - only without any caller
        return _Origin("?", None)
    return _Origin(str(frame.f_globals.get("__name__", "?")), frame.f_globals.get("__file__"))


def register(
    pipeline: Pipeline, *, origin: str | None = None, origin_file: str | None = None
) -> Pipeline:
    """Register `pipeline` under its name; returns it (so `X = register(Pipeline(...))` reads well).

    Re-registering from the same source file (the module imported twice) keeps the first
    definition and returns it; another module using the same name raises DuplicatePipelineError.
    `origin`/`origin_file` name the registering module when it is not the caller.
    """
    where = _Origin(origin, origin_file) if origin else _caller_origin(1)
    return _register(pipeline, where)


def _register(pipeline: Pipeline, where: _Origin) -> Pipeline:
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"register() expects a Pipeline, got {type(pipeline).__name__}")
    name = pipeline.name
    if name in _PIPELINES:
        first = _ORIGINS[name]
        if _PIPELINES[name] is pipeline or first.same_as(where):
            return _PIPELINES[name]
        raise DuplicatePipelineError(
            f"pipeline {name!r} is registered twice: by {first} and by {where}; "
            "give one of them another name"
        )
    _PIPELINES[name] = pipeline
    _ORIGINS[name] = where
    return pipeline


def configure(*, modules: Iterable[str] | None = None, builtins: bool | None = None) -> None:
    """Say where pipelines come from before the first lookup (the edge calls this at start-up).

    `modules`: module names (or `module:attribute`) to import, instead of PODFLEET_PIPELINES;
    `builtins`: whether podfleet's own pipelines (flashpoints, synthetic, and any module dropped
    into `pipeline/pipelines/`) are loaded. A later call affects only what is not loaded yet.
    """
    global _modules, _builtins, _loaded
    if modules is not None:
        _modules = tuple(m.strip() for m in modules if m.strip())
    if builtins is not None:
        _builtins = builtins
    _loaded = False


def _setting_modules() -> tuple[str, ...]:
    """PODFLEET_PIPELINES, through the edge's settings (the only reader of the environment)."""
    try:
        from podfleet.settings import load_settings
    except ImportError:  # the pipeline library used on its own
        return ()
    return tuple(load_settings().podfleet_pipelines)


def _register_target(target: Any, source: str, where: _Origin) -> None:
    """An entry point or `module:attr` may name a Pipeline, a list of them, or just a module."""
    if isinstance(target, Pipeline):
        _register(target, where)
    elif isinstance(target, list | tuple | set | frozenset):
        for item in target:
            _register_target(item, source, where)
    elif not hasattr(target, "__path__") and not hasattr(target, "__file__"):
        raise PipelineImportError(
            f"{source} names {type(target).__name__}; expected a module, a Pipeline or a list"
        )


def import_pipelines(spec: str, source: str = "import_pipelines()") -> None:
    """Import `module` (or `module:attr`) and register the pipelines it defines or names."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        target = getattr(module, attr) if attr else module
    except DuplicatePipelineError:
        raise
    except Exception as exc:
        raise PipelineImportError(
            f"pipelines from {source} ({spec!r}) failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    _register_target(target, f"{source} {spec}", _Origin(module.__name__, module.__file__))


def _load_builtin_modules() -> None:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{BUILTIN_PACKAGE}.{info.name}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in ("podfleet", info.name):
                raise
            # a built-in whose optional dependencies are not installed (e.g. no podfleet[scrape])
            logger.warning("pipeline module {} skipped: {} is not installed", name, exc.name)


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def load_pipelines() -> None:
    """Import every source of pipelines once (built-ins, entry points, PODFLEET_PIPELINES)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        if _builtins:
            _load_builtin_modules()
        for ep in _entry_points():
            import_pipelines(ep.value, f"entry point {ENTRY_POINT_GROUP}:{ep.name}")
        modules = _setting_modules() if _modules is None else _modules
        for spec in modules:
            import_pipelines(spec, "PODFLEET_PIPELINES")
    except BaseException:
        _loaded = False  # the next lookup reports the same error instead of a partial registry
        raise


def known_pipelines() -> list[str]:
    load_pipelines()
    return sorted(_PIPELINES)


def registered_pipelines() -> dict[str, Pipeline]:
    """Name -> pipeline, after discovery."""
    load_pipelines()
    return dict(_PIPELINES)


def get_pipeline(name: str) -> Pipeline:
    load_pipelines()
    try:
        return _PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(_PIPELINES)) or "none (see docs/pipelines.md)"
        raise InputError("pipeline", f"unknown pipeline {name!r}; known: {known}") from None


def required_resources() -> frozenset[Resource]:
    """The union of the warm resources the registered pipelines declare."""
    load_pipelines()
    out: frozenset[Resource] = frozenset()
    for pipeline in _PIPELINES.values():
        out |= pipeline.resources
    return out
