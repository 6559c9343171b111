"""12 flashpoints fanned out over 4 emulated SDK workers give a local run's results and rows."""

from __future__ import annotations

import asyncio

import pytest
from fanout_helpers import assert_close, flashpoints_input, table_rows
from podfleet.api import EndpointClient, RetryPolicy
from podfleet.coordinator import coordinate
from podfleet.envelope import parse_job
from podfleet.pipeline.store.db import dispose_engines
from podfleet.settings import Settings
from podfleet.worker import RESOURCES, run_worker

pytestmark = [pytest.mark.emulator, pytest.mark.model, pytest.mark.chromium]


async def local_run(payload: dict, db_url: str) -> dict:
    return await run_worker(
        parse_job({"id": "local", "input": payload}), Settings(database_url=db_url)
    )


async def seed_stale_flashpoint(db_url: str) -> None:
    """A flashpoint of the same date left by an earlier run: the job's cleanup must remove it."""
    payload = flashpoints_input(1)
    payload["items"] = [dict(payload["items"][0], id="fp-stale")]
    await local_run(payload, db_url)


def run_and_close(coro_fn, *args) -> dict | None:
    """Run a pipeline coroutine in its own loop, closing the warm browser it opened there."""

    async def run() -> dict | None:
        try:
            return await coro_fn(*args)
        finally:
            await RESOURCES.close_all()
            dispose_engines()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """The 12 flashpoints run locally (one worker, no fan-out): results and rows to match."""
    url = f"sqlite:///{tmp_path_factory.mktemp('local')}/local.db"
    return run_and_close(local_run, flashpoints_input(4, cleanup=True), url), url


def test_twelve_flashpoints_over_four_workers_match_a_local_run(
    fleet, run_coordinator, local_reference
):
    payload = flashpoints_input(4, cleanup=True, workers=4)
    local, local_url = local_reference
    run_and_close(seed_stale_flashpoint, fleet.db_url)

    final, siblings = run_coordinator(fleet, payload)

    out = final.output
    assert final.status == "COMPLETED", final.error
    assert out["ok"] is True and out["mode"] == "coordinator" and out["succeeded"] == 12
    assert [r["id"] for r in out["results"]] == [i["id"] for i in payload["items"]]
    assert_close(out["results"], local["results"], "results")
    fan = out["fanout"]
    assert fan["siblings_submitted"] >= 1 and fan["max_in_flight"] <= 4
    assert len(siblings) == fan["siblings_submitted"]
    completed = [s for s in siblings if s["status"] == "COMPLETED"]
    assert completed and all(s["status"] in ("COMPLETED", "CANCELLED") for s in siblings)
    assert len(siblings) - len(completed) == fan["taken_back"]  # slow pickups run locally
    rows = table_rows(fleet.db_url)
    assert len(rows["flashpoints"]) == 12 and "fp-stale" not in str(rows["flashpoints"])
    assert_close(rows, table_rows(local_url), "rows")


async def test_coordinator_load_mode_stores_the_same_rows(
    local_reference, clean_env, monkeypatch, tmp_path
):
    """LOAD_MODE=coordinator: siblings return records, the coordinator loads them once. Run on
    the emulator's in-process queue (same app, handler called in-process) to keep this fast."""
    payload = flashpoints_input(4, cleanup=True, workers=3)
    fan_url = f"sqlite:///{tmp_path}/fanout.db"
    try:
        await _load_mode_run(payload, local_reference, fan_url, monkeypatch)
    finally:
        await RESOURCES.close_all()  # the browser belongs to this test's event loop
        dispose_engines()


async def _load_mode_run(
    payload: dict, local_reference: tuple[dict, str], fan_url: str, monkeypatch
) -> None:
    from podfleet.emulator import EmulatorConfig, run_in_process
    from podfleet.entry import handler as real_handler

    local, local_url = local_reference
    await seed_stale_flashpoint(fan_url)
    monkeypatch.setenv("DATABASE_URL", fan_url)  # what the in-process siblings' settings read
    # A sibling returns records by its own LOAD_MODE (the endpoint's), not by its input.
    monkeypatch.setenv("LOAD_MODE", "coordinator")
    settings = Settings(
        runpod_endpoint_id="local-endpoint",
        database_url=fan_url,
        load_mode="coordinator",
        status_poll_interval_s=0.05,
    )
    async with run_in_process(EmulatorConfig(workers=3), handler=real_handler) as emu:
        client = EndpointClient(
            endpoint_id=emu.endpoint_id,
            base_url=emu.base_url,
            transport=emu.transport,
            retry=RetryPolicy(max_retries=2, base_s=0.01),
        )
        async with client:
            job = {"id": "coord-load", "input": payload}
            out = await coordinate(parse_job(job), settings, job, client=client)
        await emu.wait_idle(30)
        sibling_outputs = [j["output"] for j in emu.jobs()]

    assert out["ok"] is True and out["succeeded"] == 12
    assert out["load"]["flashpoints"] == 12 and out["load"]["cleaned"] >= 1
    assert all(o["load"] is None and len(o["records"]) == o["items"] for o in sibling_outputs)
    assert_close(out["results"], local["results"], "results")
    rows = table_rows(fan_url)
    assert "fp-stale" not in str(rows["flashpoints"])
    assert_close(rows, table_rows(local_url), "rows")
