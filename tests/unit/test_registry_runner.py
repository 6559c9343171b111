"""Registry and runner: names, isolation of failing items, fatal errors, ordering."""

from __future__ import annotations

import datetime as dt

import pytest
from podfleet.pipeline import (
    FatalWorkerError,
    InputError,
    Pipeline,
    PipelineConfig,
    RunContext,
    StageError,
    WarmResources,
    get_pipeline,
    known_pipelines,
    register,
    run_pipeline,
)
from podfleet.pipeline.registry import DuplicatePipelineError
from pydantic import BaseModel


class Item(BaseModel):
    id: str
    value: int


class Opts(BaseModel):
    pass


def ctx() -> RunContext:
    return RunContext(
        job_id="t",
        config=PipelineConfig(),
        resources=WarmResources(),
        options=Opts(),
        date=dt.date(2026, 1, 1),
    )


class Double:
    name = "double"

    async def run(self, items, ctx) -> None:
        for s in items:
            if s.work["value"] < 0:
                s.fail(self.name, "negative value", retryable=False)
            else:
                s.work["value"] *= 2


class Explode:
    name = "explode"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def run(self, items, ctx) -> None:
        raise self.exc


def make(stages, name="t") -> Pipeline:
    return Pipeline(
        name=name,
        item_model=Item,
        options_model=Opts,
        stages=stages,
        start=lambda item, c: {"id": item.id, "value": item.value},
        finish=lambda work, c: {"id": work["id"], "value": work["value"]},
    )


def test_known_and_unknown() -> None:
    assert {"flashpoints", "synthetic"} <= set(known_pipelines())
    with pytest.raises(InputError, match=r"unknown pipeline 'nope'; known: .*flashpoints"):
        get_pipeline("nope")


def test_duplicate_name_fails() -> None:
    with pytest.raises(DuplicatePipelineError):
        register(make([], name="flashpoints"))


async def test_failing_item_is_isolated_and_order_kept() -> None:
    items = [Item(id="a", value=1), Item(id="b", value=-1), Item(id="c", value=3)]
    run = await run_pipeline(make([Double()]), items, ctx())
    assert run.results == [{"id": "a", "value": 2}, None, {"id": "c", "value": 6}]
    assert [e.to_dict() for e in run.errors] == [
        {"item_id": "b", "stage": "double", "message": "negative value", "retryable": False}
    ]
    assert set(run.timings_s) >= {"start", "double"}


async def test_stage_exception_fails_its_items_not_the_job() -> None:
    items = [Item(id="a", value=1), Item(id="b", value=2)]
    run = await run_pipeline(make([Explode(ConnectionResetError("peer reset"))]), items, ctx())
    assert run.results == [None, None]
    assert {e.stage for e in run.errors} == {"explode"}
    assert all(e.retryable for e in run.errors)
    assert "ConnectionResetError: peer reset" in run.errors[0].message


async def test_stage_error_keeps_its_retryable_flag() -> None:
    run = await run_pipeline(
        make([Explode(StageError("bad page"))]), [Item(id="a", value=1)], ctx()
    )
    assert run.errors[0].message == "bad page" and run.errors[0].retryable is False


async def test_fatal_worker_error_propagates() -> None:
    with pytest.raises(FatalWorkerError):
        await run_pipeline(
            make([Explode(FatalWorkerError("browser gone"))]), [Item(id="a", value=1)], ctx()
        )


async def test_synthetic_pipeline() -> None:
    p = get_pipeline("synthetic")
    items = [p.item_model(id="x", duration_s=0.01), p.item_model(id="y", fail="retryable")]
    c = ctx()
    c.options = p.options_model()
    run = await run_pipeline(p, items, c)
    assert run.results[0] == {"id": "x", "duration_s": 0.01}
    assert run.results[1] is None and run.errors[0].retryable
