"""The stage protocol: what a pipeline is made of.

A stage gets every live item of the job at once (so it can batch: one browser context for all pages,
one inference pass for all texts) and records a failure per item with `ItemState.fail`, never by
raising for a single item. Raising fails every item of the call (the runner does that).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from podfleet.pipeline.config import PipelineConfig
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.resources import Resource, WarmResources, resource_set
from pydantic import BaseModel, ValidationError

__all__ = [
    "ItemError",
    "ItemState",
    "Pipeline",
    "PipelineSettingsError",
    "RunContext",
    "Stage",
    "clear_settings_cache",
]

W = TypeVar("W")


@dataclass(frozen=True)
class ItemError:
    """One failed item, as listed in a job's `errors`."""

    item_id: str
    stage: str
    message: str
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "stage": self.stage,
            "message": self.message,
            "retryable": self.retryable,
        }


@dataclass
class ItemState(Generic[W]):
    """One item travelling through the stages: its position, its work object, its fate."""

    index: int
    item_id: str
    work: W
    error: ItemError | None = None

    @property
    def alive(self) -> bool:
        return self.error is None

    def fail(self, stage: str, message: str, *, retryable: bool = False) -> None:
        if self.error is None:  # the first failure is the one that counts
            self.error = ItemError(self.item_id, stage, message, retryable)


@dataclass
class RunContext:
    """What every stage may know about the job it serves."""

    job_id: str
    config: PipelineConfig
    resources: WarmResources
    options: BaseModel
    date: dt.date
    trigger: str = "manual"
    cleanup: bool = False
    deadline: Deadline = field(default_factory=lambda: Deadline.after(7200))
    worker_id: str = "local"
    attempt: int = 0  # 0 on the first run of this work; a coordinator's retry counts up
    settings: BaseModel | None = None  # the pipeline's own settings (`Pipeline.settings()`)

    def remaining_s(self, budget_s: float | None = None) -> float:
        """Seconds left before the job's deadline; with a stage's own `budget_s`, before
        whichever ends first (`Deadline.remaining_s`)."""
        return self.deadline.remaining_s(budget_s)


@runtime_checkable
class Stage(Protocol):
    name: str

    async def run(self, items: list[ItemState[Any]], ctx: RunContext) -> None: ...


@dataclass(frozen=True)
class Pipeline(Generic[W]):
    """A named, ordered list of stages plus how to start, finish and store an item.

    - `start(item, ctx)` builds the work object from a validated input item;
    - `stages` transform it in order;
    - `finish(work, ctx)` returns the item's public result (JSON-able);
    - `record(work)` returns what `load` stores (JSON-able, may hold vectors); siblings return it
      when the coordinator does the loading, so the rows are the same either way;
    - `load(records, ctx)` writes the records of the live items and returns stats (idempotent);
    - `resources`: the warm resources its stages use (`Resource.BROWSER`, `MODEL`, `DATABASE`, or
      their names); a worker's start-up check prepares only what its registered pipelines declare;
    - `settings_model`: the pipeline's own `pydantic_settings.BaseSettings` (its own `env_prefix`),
      read once per process by `pipeline.settings()`.
    """

    name: str
    item_model: type[BaseModel]
    options_model: type[BaseModel]
    stages: Sequence[Stage]
    start: Callable[[Any, RunContext], W]
    finish: Callable[[W, RunContext], dict[str, Any]]
    record: Callable[[W], dict[str, Any]] | None = None
    load: Callable[[list[dict[str, Any]], RunContext], Any] | None = None
    item_id: Callable[[Any], str] = lambda item: str(item.id)
    description: str = ""
    resources: frozenset[Resource] = frozenset()
    settings_model: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", resource_set(self.resources))
        for field_name in ("item_model", "options_model"):
            model = getattr(self, field_name)
            if not (isinstance(model, type) and issubclass(model, BaseModel)) or model is BaseModel:
                raise TypeError(
                    f"pipeline {self.name!r}: {field_name} must be a subclass of pydantic's "
                    f"BaseModel, got {model!r}"
                )
        if self.settings_model is not None and not (
            isinstance(self.settings_model, type) and issubclass(self.settings_model, BaseModel)
        ):
            raise TypeError(
                f"pipeline {self.name!r}: settings_model must be a pydantic-settings "
                f"BaseSettings class, got {self.settings_model!r}"
            )

    def settings(self) -> BaseModel | None:
        """This pipeline's settings, read from the environment on the first call (never at
        import) and kept for the process; None without a `settings_model`."""
        if self.settings_model is None:
            return None
        key = (self.name, id(self))
        if key not in _SETTINGS:
            try:
                _SETTINGS[key] = self.settings_model()
            except ValidationError as exc:
                prefix = str(self.settings_model.model_config.get("env_prefix", ""))
                parts = [
                    f"{(prefix + '_'.join(str(p) for p in e['loc'])).upper()}: {e['msg']}"
                    for e in exc.errors(include_url=False)
                ]
                raise PipelineSettingsError(
                    f"pipeline {self.name!r}: invalid settings: " + "; ".join(parts)
                ) from None
        return _SETTINGS[key]


class PipelineSettingsError(ValueError):
    """A pipeline's environment settings do not validate (names the variables)."""


_SETTINGS: dict[tuple[str, int], BaseModel] = {}


def clear_settings_cache() -> None:
    """Forget every pipeline's settings (tests that change the environment)."""
    _SETTINGS.clear()
