"""RunPod behaviours the emulator reproduces (in-process: fast): empty input is never dispatched,
a /run accepted but answered 5xx, the REST v2 worker listing, billed worker-seconds."""

from __future__ import annotations

import asyncio

import pytest
from podfleet.emulator import EmulatorConfig, run_in_process

pytestmark = pytest.mark.emulator


async def echo(job):
    return {"echo": job["input"]}


@pytest.mark.parametrize("empty", [None, {}, [], ""])
async def test_an_empty_input_waits_in_the_queue_until_its_ttl(empty) -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu, emu.client() as c:
        parked = (await c.post("/run", json={"input": empty, "policy": {"ttl": 1500}})).json()
        real = (await c.post("/run", json={"input": {"x": 1}})).json()
        await emu.wait_job(real["id"], timeout_s=5)
        assert (await c.get(f"/status/{parked['id']}")).json()["status"] == "IN_QUEUE"
        assert emu.health()["jobs"]["inQueue"] == 1  # it counts as queued, as on RunPod
        assert emu.job(parked["id"])["attempts"] == 0  # no worker ever saw it
        await emu.wait_job(parked["id"], lambda j: j is None, timeout_s=5)  # ttl: deleted
        assert (await c.get(f"/status/{parked['id']}")).status_code == 404


async def test_an_empty_input_can_be_cancelled_and_purged() -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu, emu.client() as c:
        a = (await c.post("/run", json={"input": {}})).json()["id"]
        b = (await c.post("/run", json={"input": None})).json()["id"]
        assert (await c.post(f"/cancel/{a}")).json()["status"] == "CANCELLED"
        assert (await c.post("/purge-queue")).json()["removed"] == 1
        assert emu.job(b)["status"] == "CANCELLED" and emu.health()["jobs"]["inQueue"] == 0


async def test_a_run_accepted_but_answered_5xx_still_runs() -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu, emu.client() as c:
        emu.faults.run_accepted_error_rate = 1.0
        r = await c.post("/run", json={"input": {"n": 1}})
        assert r.status_code == 502 and "after accepting job" in r.json()["error"]
        emu.faults.run_accepted_error_rate = 0.0
        [job] = emu.jobs()
        done = await emu.wait_job(job["id"], timeout_s=5)
        assert done["status"] == "COMPLETED" and done["output"] == {"echo": {"n": 1}}
        # a client that retries the 502 makes a second job: the duplicate RunPod would make too
        await c.post("/run", json={"input": {"n": 1}})
        assert len(emu.jobs()) == 2


async def test_worker_listing_in_runpods_v2_shape_and_billing() -> None:
    async with run_in_process(EmulatorConfig(workers=2), handler=echo) as emu, emu.client() as c:
        await c.post("/run", json={"input": {"x": 1}})
        await emu.wait_idle(5)
        r = await c.get("http://emulator.invalid/v2/serverless/local-endpoint/workers")
        body = r.json()
        assert set(body) == {"endpointVersion", "summary", "workers"}
        assert body["summary"] == {
            "running": 0,
            "idle": 2,
            "initializing": 0,
            "throttled": 0,
            "unhealthy": 0,
            "total": 2,
        }
        w = body["workers"][0]
        assert {"id", "status", "isStale", "gpuCount", "version", "uptimeSeconds"} <= set(w)
        assert w["status"] == "IDLE" and w["isStale"] is False
        other = await c.get("http://emulator.invalid/v2/serverless/other/workers")
        assert other.status_code == 404
        billing = (await c.get("/health")).json()["billing"]
        assert billing["workerSeconds"] >= billing["runningSeconds"]
        idle_and_running = billing["runningSeconds"] + billing["idleSeconds"]
        assert idle_and_running == pytest.approx(billing["workerSeconds"], abs=0.002)
        assert billing["workerSeconds"] > 0 and billing["idleSeconds"] > 0
        emu.faults.max_workers = 0  # throttled workers are not billed
        before = emu.state.billing()["workerSeconds"]
        await asyncio.sleep(0.3)
        assert emu.state.billing()["workerSeconds"] == pytest.approx(before, abs=0.01)
