"""A pipeline of timed, optionally failing items, for tests and fan-out benchmarks."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal

from podfleet.pipeline.errors import JobFailure
from podfleet.pipeline.registry import register
from podfleet.pipeline.stage import ItemState, Pipeline, RunContext
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SYNTHETIC", "SyntheticItem", "SyntheticOptions"]


class SyntheticItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    duration_s: float = Field(0.0, ge=0, le=3600, description="How long the item takes.")
    busy: bool = Field(False, description="Burn CPU for duration_s instead of sleeping.")
    fail: Literal["item", "retryable"] | None = Field(None, description="Fail this item.")
    crash_attempts: int = Field(
        0, ge=0, description="Kill the worker process while the attempt number is below this."
    )


class SyntheticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail_job_attempts: int = Field(
        0, ge=0, description="The whole job fails while its attempt number is below this."
    )


class WorkStage:
    name = "work"

    async def run(self, items: list[ItemState[SyntheticItem]], ctx: RunContext) -> None:
        opts: SyntheticOptions = ctx.options  # type: ignore[assignment]
        if ctx.attempt < opts.fail_job_attempts:
            raise JobFailure(f"synthetic job failure on attempt {ctx.attempt}")
        for state in items:  # items of one job run one after another, like a real worker
            item = state.work
            if ctx.attempt < item.crash_attempts:
                os._exit(17)  # a hard crash, as a killed or OOM-ed process would look
            if item.busy:
                end = time.perf_counter() + item.duration_s
                while time.perf_counter() < end:
                    pass
            elif item.duration_s:
                await asyncio.sleep(item.duration_s)
            if item.fail:
                state.fail(
                    self.name, f"synthetic {item.fail} failure", retryable=item.fail == "retryable"
                )


def _finish(item: SyntheticItem, ctx: RunContext) -> dict[str, Any]:
    return {"id": item.id, "duration_s": item.duration_s}


SYNTHETIC = register(
    Pipeline(
        name="synthetic",
        item_model=SyntheticItem,
        options_model=SyntheticOptions,
        stages=(WorkStage(),),
        start=lambda item, ctx: item,
        finish=_finish,
        description="timed items that may fail or crash the worker (tests, benchmarks)",
    )
)
