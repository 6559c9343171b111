"""Progress of a worker-mode job: the pipeline's per-stage callback (pure) and what a real SDK
worker publishes through the emulator while the job runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from podfleet.emulator import Emulator, run_emulator
from podfleet.pipeline.config import PipelineConfig
from podfleet.pipeline.pipelines.synthetic import SYNTHETIC, SyntheticItem, SyntheticOptions
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.runner import run_pipeline
from podfleet.pipeline.stage import RunContext

from tests.integration.emulator.helpers import client_for, config

pytestmark = pytest.mark.emulator


async def test_run_pipeline_reports_each_stage_and_the_end() -> None:
    ctx = RunContext("p", PipelineConfig(), WarmResources(), SyntheticOptions(), dt.date.today())
    items = [SyntheticItem(id="a"), SyntheticItem(id="b", fail="item")]
    seen: list[dict[str, Any]] = []
    run = await run_pipeline(SYNTHETIC, items, ctx, load=False, progress=seen.append)
    assert [r is None for r in run.results] == [False, True]
    assert seen[0] == {
        "stage": "work",
        "stages_done": 0,
        "stages_total": 1,
        "items_total": 2,
        "items_failed": 0,
    }
    assert seen[-1] == {
        "stage": "done",
        "stages_done": 1,
        "stages_total": 1,
        "items_total": 2,
        "items_failed": 1,
    }


async def test_a_failing_progress_callback_fails_no_item() -> None:
    ctx = RunContext("p", PipelineConfig(), WarmResources(), SyntheticOptions(), dt.date.today())

    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("display gone")

    run = await run_pipeline(SYNTHETIC, [SyntheticItem(id="a")], ctx, load=False, progress=broken)
    assert run.results == [{"id": "a", "duration_s": 0.0}] and not run.errors


@pytest.fixture(scope="module")
def emu(tmp_path_factory) -> Iterator[Emulator]:
    with run_emulator(config(tmp_path_factory.mktemp("progress"), workers=1)) as running:
        running.wait_ready(60)
        yield running


def test_a_worker_job_publishes_its_stage_while_it_runs(emu: Emulator) -> None:
    body = {
        "input": {
            "mode": "worker",
            "pipeline": "synthetic",
            "items": [{"id": "a", "duration_s": 5.0}, {"id": "b", "fail": "item"}],
        }
    }
    with client_for(emu) as c:
        job_id = c.post("/run", json=body).json()["id"]
        info = emu.wait_job(job_id, lambda j: bool(j and j["progress"]), timeout_s=30)
        progress = info["progress"]
        assert progress["stage"] == "work" and progress["items_total"] == 2
        assert progress["stages_done"] == 0 and progress["stages_total"] >= 1
        running = c.get(f"/status/{job_id}").json()
        assert running["status"] == "IN_PROGRESS" and running["output"] == progress
        final = emu.wait_job(job_id, timeout_s=30)
    assert final["status"] == "COMPLETED" and final["output"]["errors"][0]["item_id"] == "b"
