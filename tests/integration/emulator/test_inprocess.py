"""The emulator in-process: same app and queue, handlers called directly (fast, no processes)."""

from __future__ import annotations

import asyncio
import json

import pytest
from podfleet.emulator import EmulatorConfig, FaultConfig, run_in_process

pytestmark = pytest.mark.emulator

KEY = "in-process-key"


async def echo(job):
    return {"echo": job["input"]}


def cfg(**kw) -> EmulatorConfig:
    return EmulatorConfig(api_key=KEY, **{"workers": 1, **kw})


async def test_run_status_runsync_and_errors() -> None:
    async with run_in_process(cfg(), handler=echo) as emu, emu.client() as c:
        job_id = (await c.post("/run", json={"input": {"x": 1}})).json()["id"]
        await emu.wait_idle(5)
        body = (await c.get(f"/status/{job_id}")).json()
        assert body["status"] == "COMPLETED" and body["output"] == {"echo": {"x": 1}}
        assert body["workerId"] == "worker-0"
        assert isinstance(body["delayTime"], int) and isinstance(body["executionTime"], int)
        sync = (await c.post("/runsync", json={"input": [1, 2]})).json()
        assert sync["status"] == "COMPLETED" and sync["output"] == {"echo": [1, 2]}
        missing = await c.get("/status/nope")
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
        anon = await c.get("/health", headers={"Authorization": ""})
        assert anon.status_code == 401


async def test_bad_requests_name_the_field_and_payload_limits_apply() -> None:
    config = cfg(max_payload_bytes=200, max_runsync_payload_bytes=400)
    async with run_in_process(config, handler=echo) as emu, emu.client() as c:
        r = await c.post("/run", json={"inputs": 1})
        assert r.status_code == 400 and "input: Field required" in r.json()["error"]
        assert "inputs: unknown field" in r.json()["error"]
        r = await c.post("/run", json={"input": 1, "policy": {"executionTimeout": "5"}})
        assert r.status_code == 400 and "policy.executionTimeout" in r.json()["error"]
        r = await c.post("/run", json={"input": 1, "policy": {"ttl": 0}})
        assert r.status_code == 400 and "policy.ttl" in r.json()["error"]
        big = {"input": "x" * 300}
        r = await c.post("/run", json=big)
        assert r.status_code == 413 and "200 bytes" in r.json()["error"]
        assert (await c.post("/runsync", json=big)).json()["status"] == "COMPLETED"
        r = await c.post("/runsync?wait=abc", json={"input": 1})
        assert r.status_code == 400 and "wait" in r.json()["error"]


async def test_low_priority_jobs_wait_behind_normal_ones() -> None:
    order: list[str] = []

    async def record(job):
        order.append(job["input"])
        return {}

    config = cfg(faults=FaultConfig(max_workers=0))
    async with run_in_process(config, handler=record) as emu, emu.client() as c:
        await c.post("/run", json={"input": "low-1", "policy": {"lowPriority": True}})
        await c.post("/run", json={"input": "normal-1"})
        await c.post("/run", json={"input": "low-2", "policy": {"lowPriority": True}})
        await c.post("/run", json={"input": "normal-2"})
        assert (await c.get("/health")).json()["workers"]["throttled"] == 1
        queued = await c.post("/runsync?wait=0", json={"input": "sync"})
        assert queued.json() == {"id": queued.json()["id"], "status": "IN_QUEUE"}
        emu.faults.max_workers = None
        await emu.wait_idle(5)
    assert order == ["normal-1", "normal-2", "sync", "low-1", "low-2"]


async def test_failures_retry_cancel_and_purge() -> None:
    attempts: dict[str, int] = {}
    release = asyncio.Event()
    cancelled: list[str] = []

    async def handler(job):
        kind = job["input"]
        attempts[kind] = attempts.get(kind, 0) + 1
        if kind == "raise" and attempts[kind] == 1:
            raise ValueError("first attempt fails")
        if kind == "error-dict":
            return {"error": "bad item", "partial": 1}
        if kind == "block":
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(job["id"])
                raise
        return {"kind": kind}

    async with run_in_process(cfg(), handler=handler) as emu, emu.client() as c:
        raised = (await c.post("/runsync", json={"input": "raise"})).json()
        assert raised["status"] == "FAILED"
        assert json.loads(raised["error"])["error_message"] == "first attempt fails"
        assert (await c.post(f"/retry/{raised['id']}")).json()["status"] == "IN_QUEUE"
        assert (await emu.wait_job(raised["id"]))["status"] == "COMPLETED"
        again = await c.post(f"/retry/{raised['id']}")
        assert again.status_code == 400 and "only FAILED or TIMED_OUT" in again.json()["error"]

        err = (await c.post("/runsync", json={"input": "error-dict"})).json()
        assert err["status"] == "FAILED" and err["error"] == "bad item"
        assert err["output"] == {"partial": 1}

        running = (await c.post("/run", json={"input": "block"})).json()["id"]
        await emu.wait_job(running, lambda j: j is not None and j["status"] == "IN_PROGRESS")
        queued = [(await c.post("/run", json={"input": f"q{i}"})).json()["id"] for i in range(3)]
        assert (await c.post(f"/cancel/{queued[0]}")).json()["status"] == "CANCELLED"
        purged = (await c.post("/purge-queue")).json()
        assert purged == {"removed": 2, "status": "completed"}
        assert (await c.post(f"/cancel/{running}")).json()["status"] == "CANCELLED"
        await emu.wait_idle(5)
        assert cancelled == [running]  # job-stop reached the handler
        assert {emu.job(q)["status"] for q in queued} == {"CANCELLED"}
        assert "q0" not in attempts and "q1" not in attempts


async def test_killed_worker_job_is_requeued_then_failed_when_retries_run_out() -> None:
    gate = asyncio.Event()

    async def handler(job):
        await gate.wait()
        return {"ok": True}

    async with run_in_process(cfg(restart_backoff_s=0), handler=handler) as emu, emu.client() as c:
        job_id = (await c.post("/run", json={"input": 1})).json()["id"]
        await emu.wait_job(job_id, lambda j: j is not None and j["status"] == "IN_PROGRESS")
        assert emu.kill_worker() == "worker-0"
        await emu.wait_job(job_id, lambda j: j is not None and j["attempts"] == 2)
        assert (await c.get("/health")).json()["jobs"]["retried"] == 1
        emu.kill_worker()  # max_job_retries=1: the second death fails the job
        info = await emu.wait_job(job_id)
        assert info["status"] == "FAILED" and "died" in info["error"]
        assert emu.workers()[0]["restarts"] >= 1


async def test_generator_stream_timeout_and_retention() -> None:
    async def chunks(job):
        for i in range(job["input"]):
            yield i

    config = cfg(result_retention_s=0.2, stream_long_poll_s=0.5)
    async with run_in_process(config, handler=chunks) as emu, emu.client() as c:
        job_id = (await c.post("/run", json={"input": 3})).json()["id"]
        await emu.wait_idle(5)
        body = (await c.get(f"/stream/{job_id}")).json()
        assert body == {"status": "COMPLETED", "stream": [{"output": i} for i in range(3)]}
        assert (await c.get(f"/status/{job_id}")).json()["output"] == [0, 1, 2]
        await emu.wait_job(job_id, lambda j: j is None)  # result retention ran out
        assert (await c.get(f"/status/{job_id}")).status_code == 404


async def test_execution_timeout_in_process() -> None:
    stopped = asyncio.Event()

    async def forever(job):
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    async with run_in_process(cfg(), handler=forever) as emu, emu.client() as c:
        job = {"input": 1, "policy": {"executionTimeout": 50}}
        body = (await c.post("/runsync", json=job)).json()
        assert body["status"] == "TIMED_OUT" and "execution timeout" in body["error"]
        await asyncio.wait_for(stopped.wait(), 5)


async def test_fault_dice_and_worker_states() -> None:
    faults = FaultConfig(api_error_rate=0.5, api_error_statuses=[502], seed=7, cold_start_s=60)
    config = cfg(workers=3, faults=faults)
    async with run_in_process(config, handler=echo) as emu, emu.client() as c:
        codes = [(await c.get("/health")).status_code for _ in range(40)]
        assert set(codes) == {200, 502}
        emu.faults.api_error_rate = 0
        emu.faults.max_workers = 1
        workers = (await c.get("/health")).json()["workers"]
        assert workers == {
            "idle": 0,
            "running": 0,
            "initializing": 1,  # cold start: not taking jobs yet
            "throttled": 2,
            "unhealthy": 0,
            "ready": 0,
        }
        with pytest.raises(ValueError, match="unknown route"):
            emu.faults.api_error_routes = ["nope"]


async def test_raw_worker_protocol_rejects_unreadable_and_oversized_results() -> None:
    config = cfg(workers=0, max_payload_bytes=100)
    async with run_in_process(config, handler=echo) as emu, emu.client() as c:
        emu.state.register_worker("raw", 0, supervised=False)
        worker = {"Authorization": emu.state.worker_key}
        ids = [(await c.post("/run", json={"input": i})).json()["id"] for i in range(4)]
        taken = await c.get("/job-take-batch/raw?batch_size=4", headers=worker)
        assert [j["id"] for j in taken.json()] == ids
        r = await c.post(f"/job-done/raw/{ids[0]}", content=b"{not json", headers=worker)
        assert r.status_code == 400
        assert "unreadable result" in emu.job(ids[0])["error"]
        big = json.dumps({"output": "x" * 200}).encode()
        r = await c.post(f"/job-done/raw/{ids[1]}", content=big, headers=worker)
        assert r.status_code == 413 and emu.job(ids[1])["status"] == "FAILED"
        ok = await c.post(f"/job-done/raw/{ids[2]}", content=b'{"output": 1}', headers=worker)
        assert ok.status_code == 200 and emu.job(ids[2])["output"] == 1
        late = await c.post(f"/job-done/raw/{ids[2]}", content=b'{"output": 2}', headers=worker)
        assert late.json()["accepted"] is False and emu.job(ids[2])["output"] == 1
        nan = await c.post(f"/job-done/raw/{ids[3]}", content=b'{"output": NaN}', headers=worker)
        assert nan.status_code == 400 and "NaN is not valid JSON" in emu.job(ids[3])["error"]
        assert (await c.get(f"/status/{ids[3]}")).json()["status"] == "FAILED"
        stranger = await c.get("/job-take/raw", headers={"Authorization": "x"})
        assert stranger.status_code == 401


async def test_a_failed_webhook_delivery_logs_no_part_of_its_url_secret() -> None:
    """Callers put a per-job token in the webhook URL; a failed delivery names only the origin."""
    import socket

    from loguru import logger

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING")
    try:
        async with run_in_process(cfg(), handler=echo) as emu, emu.client() as c:
            url = f"http://127.0.0.1:{port}/hooks/tok-path-secret?token=tok-query-secret"
            await c.post("/run", json={"input": {"x": 1}, "webhook": url})
            await emu.wait_idle(5)
            for _ in range(100):
                if any("webhook" in line for line in lines):
                    break
                await asyncio.sleep(0.05)
    finally:
        logger.remove(sink)
    failures = [line for line in lines if "webhook" in line]
    assert failures, "the failed delivery was not logged"
    assert all("tok-path-secret" not in f and "tok-query-secret" not in f for f in failures)
    assert f"127.0.0.1:{port}" in failures[0]
