"""The endpoint API client against the emulator's real app (in-process mode: ASGI transport,
workers calling a handler function directly)."""

from __future__ import annotations

import asyncio
import random

import pytest
from podfleet.api import (
    AuthError,
    EndpointClient,
    JobNotFound,
    JobStatus,
    Policy,
    RetryPolicy,
)
from podfleet.emulator import EmulatorConfig, run_in_process


async def echo(job: dict) -> dict:
    inp = job["input"]
    if inp.get("fail"):
        raise ValueError("boom")
    if inp.get("sleep_s"):
        await asyncio.sleep(inp["sleep_s"])
    return {"echo": inp}


async def chunks(job: dict):
    for i in range(3):
        await asyncio.sleep(0.01)
        yield {"n": i}


def client_of(emu, *, api_key: str | None = None, retries: int = 2) -> EndpointClient:
    return EndpointClient(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        api_key=api_key if api_key is not None else emu.api_key,
        transport=emu.transport,
        retry=RetryPolicy(max_retries=retries, base_s=0.005, max_s=0.05, rng=random.Random(3)),
    )


async def test_run_wait_runsync_health_retry_cancel():
    async with run_in_process(EmulatorConfig(workers=2, api_key="k-1"), handler=echo) as emu:
        async with client_of(emu) as client:
            job = await client.run({"x": 1}, policy=Policy(execution_timeout_s=30, ttl_s=60))
            done = await client.wait(job.id, timeout_s=10, interval_s=0.02)
            assert done.status is JobStatus.COMPLETED and done.output == {"echo": {"x": 1}}
            assert done.delay_time_ms is not None and done.execution_time_ms is not None

            sync = await client.runsync({"y": 2}, wait_s=10)
            assert sync.status is JobStatus.COMPLETED and sync.output == {"echo": {"y": 2}}

            failed = await client.wait((await client.run({"fail": True})).id, interval_s=0.02)
            assert failed.status is JobStatus.FAILED and "boom" in str(failed.error)
            again = await client.retry(failed.id)
            assert again.id == failed.id and not again.terminal

            slow = await client.run({"sleep_s": 30})
            cancelled = await client.cancel(slow.id)
            assert cancelled.status is JobStatus.CANCELLED
            assert (await client.status(slow.id)).status is JobStatus.CANCELLED

            health = await client.health()
            assert health.jobs["completed"] >= 2 and sum(health.workers.values()) >= 2
        await emu.wait_idle(10)


async def test_purge_queue_with_no_workers():
    async with (
        run_in_process(EmulatorConfig(workers=0), handler=echo) as emu,
        client_of(emu) as client,
    ):
        jobs = await client.submit_many([{"i": i} for i in range(3)], concurrency=3)
        assert all(j.status is JobStatus.IN_QUEUE for j in jobs)
        assert await client.purge_queue() == 3
        with pytest.raises(JobNotFound):
            await client.status("no-such-job")


async def test_stream_yields_a_generators_chunks_in_order():
    async with (
        run_in_process(EmulatorConfig(workers=1), handler=chunks) as emu,
        client_of(emu) as client,
    ):
        job = await client.run({"go": 1})  # RunPod never dispatches an empty input
        got = [c async for c in client.stream(job.id, interval_s=0.02, timeout_s=10)]
    assert got == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_wrong_key_is_an_auth_error():
    async with (
        run_in_process(EmulatorConfig(workers=1, api_key="right"), handler=echo) as emu,
        client_of(emu, api_key="wrong-key-xyz") as client,
    ):
        with pytest.raises(AuthError) as err:
            await client.run({"x": 1})
    assert "wrong-key-xyz" not in str(err.value)


async def test_no_job_lost_in_429_and_5xx_storms():
    async with run_in_process(EmulatorConfig(workers=2), handler=echo) as emu:
        emu.faults.api_error_statuses = [429, 500, 503]
        emu.faults.api_error_rate = 0.4
        emu.faults.seed = 11
        async with client_of(emu, retries=12) as client:
            jobs = await client.submit_many([{"i": i} for i in range(20)], concurrency=5)
            finals = [await client.wait(j.id, timeout_s=30, interval_s=0.02) for j in jobs]
    assert [f.output["echo"]["i"] for f in finals] == list(range(20))
    assert len({f.id for f in finals}) == 20
