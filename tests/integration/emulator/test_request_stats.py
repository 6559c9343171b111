"""The emulator's per-operation request counters, workers added at run time, and the stream
channel's rules: any running job may post chunks (not only generators), a chunk over the limit
is refused and dropped while the job runs on."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from podfleet.emulator import EmulatorConfig, FaultConfig, run_in_process
from podfleet.emulator.observe import snapshot
from podfleet.emulator.requests import RequestCounter

pytestmark = pytest.mark.emulator

KEY = "stats-key"


async def echo(job):
    return {"echo": job["input"]}


def cfg(**kw) -> EmulatorConfig:
    return EmulatorConfig(api_key=KEY, **{"workers": 1, **kw})


def test_counter_peaks_and_windows() -> None:
    now = [1000.2]
    counter = RequestCounter(clock=lambda: now[0])
    for second, n in ((0, 3), (1, 5), (4, 1), (12, 7)):
        now[0] = 1000.2 + second
        for _ in range(n):
            counter.record("status")
    counter.record("run")
    now[0] = 1020.2
    stats = counter.stats()
    assert stats["status"]["total"] == 16 and stats["run"]["total"] == 1
    assert stats["status"]["peak_per_s"] == 7
    # busiest 10 s: seconds 995-1004 hold 3+5+1 = 9, 1003-1012 hold 1+7 = 8
    assert stats["status"]["peak_per_10s"] == 9
    assert stats["status"]["limit_per_10s"] == 2000 and stats["run"]["limit_per_10s"] == 1000
    assert stats["all"]["total"] == 17 and stats["window_s"] == pytest.approx(20.0)
    assert stats["status"]["mean_per_s"] == pytest.approx(16 / 20, abs=0.01)
    late = counter.stats(since=1010.0)
    assert late["status"]["total"] == 7 and "window_s" in late
    early = counter.stats(since=1000.0, until=1002.0)
    assert early["status"]["total"] == 8


async def test_request_stats_count_each_operation() -> None:
    t0 = time.time()
    async with run_in_process(cfg(), handler=echo) as emu, emu.client() as c:
        ids = [(await c.post("/run", json={"input": i})).json()["id"] for i in range(5)]
        await emu.wait_idle(5)
        for job_id in ids:
            assert (await c.get(f"/status/{job_id}")).json()["status"] == "COMPLETED"
        await c.get("/health")
        await c.get("/stream/" + ids[0])
        await c.post("/cancel/" + ids[0])
        anon = await c.get("/health", headers={"Authorization": ""})
        assert anon.status_code == 401
        stats = emu.request_stats(since=t0)
        assert stats["run"]["total"] == 5 and stats["status"]["total"] == 5
        assert stats["health"]["total"] == 2  # refused requests are requests too
        assert stats["stream"]["total"] == 1 and stats["cancel"]["total"] == 1
        assert stats["all"]["total"] == 14
        assert stats["run"]["peak_per_s"] >= 1
        assert stats["run"]["peak_per_10s"] <= stats["run"]["total"]
        assert emu.request_stats(since=time.time() + 5)["all"]["total"] == 0
        rates = snapshot(emu.state)["requests"]
        assert rates["run"]["total"] == 5 and rates["status"]["per_s_10s"] > 0


async def test_in_process_add_workers_share_the_queue() -> None:
    seen: list[str] = []

    async def slow(job):
        await asyncio.sleep(0.3)
        return {"n": job["input"]}

    async def other(job):
        seen.append(job["id"])
        await asyncio.sleep(0.3)
        return {"n": job["input"], "by": "added"}

    async with run_in_process(cfg(workers=1), handler=slow) as emu, emu.client() as c:
        assert emu.add_workers(2, handler=other) == ["worker-1", "worker-2"]
        ids = [(await c.post("/run", json={"input": i})).json()["id"] for i in range(6)]
        await emu.wait_idle(10)
        outputs = [emu.job(j)["output"] for j in ids]
        assert [o["n"] for o in outputs] == list(range(6))
        by_worker = {emu.job(j)["worker_id"] for j in ids}
        assert by_worker == {"worker-0", "worker-1", "worker-2"}
        assert sum(o.get("by") == "added" for o in outputs) == len(seen) >= 2
        with pytest.raises(ValueError, match="n: expected"):
            emu.add_workers(-1)


async def test_any_running_job_may_stream_and_oversized_chunks_are_dropped() -> None:
    config = cfg(workers=0, max_stream_chunk_bytes=1000)
    async with run_in_process(config, handler=echo) as emu, emu.client() as c:
        emu.state.register_worker("raw", 0, supervised=False)
        worker = {"Authorization": emu.state.worker_key}
        job_id = (await c.post("/run", json={"input": {"plain": "not a generator"}})).json()["id"]
        taken = await c.get("/job-take/raw", headers=worker)
        assert taken.json()["id"] == job_id
        chunk = {"output": {"items": [{"index": 0, "id": "a", "result": {"v": 1}}]}}
        r = await c.post(f"/job-stream/raw/{job_id}", content=json.dumps(chunk), headers=worker)
        assert r.status_code == 200 and r.json() == {"accepted": True}
        # the caller reads it while the job is still running
        early = (await c.get(f"/stream/{job_id}")).json()
        assert early == {"status": "IN_PROGRESS", "stream": [chunk]}
        big = json.dumps({"output": {"items": [{"blob": "x" * 2000}]}})
        r = await c.post(f"/job-stream/raw/{job_id}", content=big, headers=worker)
        assert r.status_code == 413 and "stream chunk too large" in r.json()["error"]
        assert "1000 bytes limit" in r.json()["error"]
        assert emu.job(job_id)["status"] == "IN_PROGRESS"  # the job runs on
        last = {"output": {"items": [{"index": 1, "id": "b", "result": {"v": 2}}]}}
        await c.post(f"/job-stream/raw/{job_id}", content=json.dumps(last), headers=worker)
        result = b'{"output": {"ok": 1}}'
        done = await c.post(f"/job-done/raw/{job_id}", content=result, headers=worker)
        assert done.json() == {"accepted": True}
        final = (await c.get(f"/stream/{job_id}")).json()
        assert final == {"status": "COMPLETED", "stream": [last]}
        job = emu.job(job_id)
        assert job["output"] == {"ok": 1} and len(job["stream"]) == 2
        assert any("too large" in p["reason"] for p in job["ignored_posts"])
        # a chunk for a job that is not running on this worker is ignored, not stored
        late = await c.post(f"/job-stream/raw/{job_id}", content=json.dumps(last), headers=worker)
        assert late.json() == {"accepted": False} and len(emu.job(job_id)["stream"]) == 2
        stats = emu.request_stats()
        assert stats["job-stream"]["total"] == 4 and stats["job-take"]["total"] == 1
        assert stats["job-done"]["total"] == 1


async def test_rate_limits_answer_429_over_runpods_published_figures() -> None:
    config = cfg(workers=0, faults=FaultConfig(rate_limits=True))
    async with run_in_process(config, handler=echo) as emu, emu.client() as c:
        codes = [(await c.post("/cancel/nope")).status_code for _ in range(101)]
        assert codes == [404] * 100 + [429]  # /cancel: 100 per 10 s
        r = await c.post("/cancel/nope")
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert "more than 100 /cancel requests in 10 s" in r.json()["error"]
        assert (await c.get("/status/nope")).status_code == 404  # other operations unaffected
        emu.faults.rate_limits = False
        assert (await c.post("/cancel/nope")).status_code == 404
        assert emu.request_stats()["cancel"]["peak_per_10s"] == 103
