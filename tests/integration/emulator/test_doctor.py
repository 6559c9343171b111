"""`podfleet doctor` names the right cause on emulated scenarios that produce it."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from podfleet.api import EndpointClient
from podfleet.doctor import diagnose
from podfleet.emulator import Emulator, run_emulator

from tests.integration.emulator.helpers import API_KEY, FIXTURE_HANDLERS, config

pytestmark = pytest.mark.emulator

SLOW = [sys.executable, "-u", str(FIXTURE_HANDLERS / "slow_handler.py")]


def client(emu: Emulator, **kw: Any) -> EndpointClient:
    kw.setdefault("api_key", API_KEY)
    return EndpointClient(endpoint_id=emu.endpoint_id, base_url=emu.base_url, **kw)


async def doctor(emu: Emulator, **kw: Any):
    async with client(emu) as c:
        return await diagnose(c, sample_s=kw.pop("sample_s", 0.5), **kw)


def codes(report) -> list[str]:
    return [f.code for f in report.findings]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Iterator[Emulator]:
    with run_emulator(config(tmp_path_factory.mktemp("doc"), workers=2, cmd=SLOW)) as emu:
        emu.wait_ready(60)
        yield emu


async def test_a_healthy_endpoint_has_no_finding_and_the_probe_completes(healthy) -> None:
    report = await doctor(healthy, probe={"sleep_s": 0})
    assert report.healthy, report.findings
    assert report.probe["status"] == "COMPLETED"
    assert report.workers["summary"]["idle"] == 2


async def test_wrong_key_wrong_endpoint_and_unreachable(healthy) -> None:
    async with client(healthy, api_key="wrong-key-999") as c:
        report = await diagnose(c, sample_s=0)
    assert codes(report) == ["wrong-key"] and "wrong-key-999" not in str(report.to_dict())
    async with EndpointClient(endpoint_id="nope", base_url=healthy.base_url, api_key=API_KEY) as c:
        assert codes(await diagnose(c, sample_s=0)) == ["wrong-endpoint"]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with EndpointClient(
        endpoint_id="x", base_url=f"http://127.0.0.1:{port}/v2", retry_connect=False
    ) as c:
        report = await diagnose(c, sample_s=0)
    assert codes(report) == ["unreachable"]
    assert "podfleet emulate" in report.findings[0].fix


async def test_failing_jobs_are_named(healthy) -> None:
    async with client(healthy) as c:
        ids = [(await c.run({"fail": f"boom {i}"})).id for i in range(3)]
        for job_id in ids:
            await c.wait(job_id, timeout_s=30, interval_s=0.2)
    report = await doctor(healthy, sample_s=0)
    assert "jobs-failing" in codes(report)


async def test_all_workers_throttled(tmp_path) -> None:
    with run_emulator(config(tmp_path, workers=2, cmd=SLOW)) as emu:
        emu.faults.max_workers = 0
        emu.wait_health(lambda h: h["workers"]["throttled"] == 2, 60)
        report = await doctor(emu)
    assert codes(report)[0] == "throttled"
    assert "GHCR" in report.findings[0].fix and "worker-0" in report.findings[0].evidence[0]


async def test_crash_looping_workers(tmp_path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('ImportError: no module x'); sys.exit(3)"]
    cfg = config(tmp_path, workers=1, cmd=cmd, restart_backoff_s=0.05, max_restart_backoff_s=0.2)
    with run_emulator(cfg) as emu:
        emu.wait_workers(lambda ws: ws[0]["state"] == "unhealthy", 60)
        report = await doctor(emu)
    finding = report.findings[codes(report).index("crash-looping")]
    assert "exited with code 3" in finding.evidence[0] and "restarts" in finding.evidence[0]


async def test_stuck_initializing(tmp_path) -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(600)"]  # never asks for a job
    with run_emulator(config(tmp_path, workers=1, cmd=cmd, shutdown_grace_s=2)) as emu:
        emu.wait_workers(lambda ws: ws[0]["pid"] is not None, 30)
        report = await doctor(emu, sample_s=1.5, stuck_after_s=1)
    assert "stuck-initializing" in codes(report)
    assert "queue-growing" not in codes(report)  # nothing was queued


async def test_queue_growing_with_nothing_running(tmp_path) -> None:
    cfg = config(tmp_path, workers=1, cmd=SLOW)
    cfg.faults.cold_start_s = 120  # workers initialize for two minutes
    with run_emulator(cfg) as emu:
        async with client(emu) as c:
            for i in range(3):
                await c.run({"sleep_s": 0, "echo": i})
        report = await doctor(emu)
    assert "queue-growing" in codes(report)
    assert "stuck-initializing" not in codes(report)  # young workers are not stuck yet


async def test_stale_workers_after_a_release(tmp_path) -> None:
    with run_emulator(config(tmp_path, workers=1, cmd=SLOW)) as emu:
        emu.wait_ready(60)
        assert emu.release() == 2
        report = await doctor(emu, sample_s=0)
        listing = emu.workers_listing()
    assert codes(report) == ["stale-workers"]
    assert listing["endpointVersion"] == 2 and listing["workers"][0]["isStale"] is True


async def test_a_rolling_release_replaces_every_stale_worker(tmp_path) -> None:
    with run_emulator(config(tmp_path, workers=2, cmd=SLOW)) as emu:
        emu.wait_ready(60)
        assert emu.release(rolling=True) == 2
        deadline = asyncio.get_running_loop().time() + 90
        while any(w["isStale"] for w in emu.workers_listing()["workers"]):
            assert asyncio.get_running_loop().time() < deadline, emu.workers_listing()
            await asyncio.sleep(0.3)
        emu.wait_ready(60)
        report = await doctor(emu, sample_s=0)
        listing = emu.workers_listing()
    assert report.healthy, report.findings
    assert {w["version"] for w in listing["workers"]} == {2}
    assert all(w["restarts"] == 1 for w in listing["workers"])
