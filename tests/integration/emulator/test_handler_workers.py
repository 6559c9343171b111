"""The emulator with 4 real worker processes running our unmodified `python handler.py`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from tests.integration.emulator.helpers import API_KEY, client_for, synthetic

pytestmark = pytest.mark.emulator


def test_twenty_jobs_through_four_sdk_workers(handler_emulator) -> None:
    emu = handler_emulator
    with client_for(emu) as c:
        ids = {}
        for i in range(20):
            r = c.post("/run", json=synthetic(f"item-{i}", 0.05))
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "IN_QUEUE"
            ids[r.json()["id"]] = f"item-{i}"
        emu.wait_idle(60)
        used_workers = set()
        for job_id, item_id in ids.items():
            body = c.get(f"/status/{job_id}").json()
            assert body["status"] == "COMPLETED", body
            assert body["output"]["ok"] is True
            assert body["output"]["results"] == [{"id": item_id, "duration_s": 0.05}]
            assert isinstance(body["delayTime"], int) and isinstance(body["executionTime"], int)
            used_workers.add(body["workerId"])
        assert len(used_workers) > 1  # the queue fed several processes
        assert emu.health()["jobs"]["inQueue"] == 0


def test_worker_sigkilled_mid_job_is_restarted_and_job_rerun(handler_emulator) -> None:
    emu = handler_emulator
    before = emu.health()["jobs"]["retried"]
    with client_for(emu) as c:
        job_id = c.post("/run", json=synthetic("victim", 2.0)).json()["id"]
        running = emu.wait_job(job_id, lambda j: j is not None and j["status"] == "IN_PROGRESS")
        assert running is not None
        running_pid = next(w["pid"] for w in emu.workers() if w["id"] == running["worker_id"])
        victim = emu.kill_worker(running["worker_id"], sig=signal.SIGKILL)
        info = emu.wait_job(job_id, timeout_s=60)
        assert info is not None and info["status"] == "COMPLETED", info
        assert info["retries"] == 1 and info["attempts"] == 2
        assert info["output"]["results"] == [{"id": "victim", "duration_s": 2.0}]
        body = c.get(f"/status/{job_id}").json()
        assert body["status"] == "COMPLETED" and body["retries"] == 1
        health = c.get("/health").json()
        assert health["jobs"]["retried"] == before + 1
        killed = next(w for w in emu.workers() if w["id"] == victim)
        assert killed["restarts"] == 1 and killed["last_exit"] == "killed by SIGKILL"
        emu.wait_workers(  # a new process runs in the slot
            lambda ws: next(w for w in ws if w["id"] == victim)["pid"] != running_pid, 30
        )


def test_fault_injection_is_visible_to_a_raw_client(handler_emulator) -> None:
    emu = handler_emulator
    with client_for(emu) as c:
        try:
            emu.faults.api_error_statuses = [429]
            emu.faults.api_error_rate = 1.0
            r = c.get("/health")
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert "injected" in r.json()["error"]
            emu.faults.api_error_statuses = [500, 503]
            emu.faults.api_error_routes = ["status"]
            job_id = c.post("/run", json=synthetic("through-faults")).json()["id"]
            assert c.get(f"/status/{job_id}").status_code in (500, 503)
            emu.faults.api_error_rate = 0.0
            info = emu.wait_job(job_id, timeout_s=30)
            assert info is not None and info["status"] == "COMPLETED"
            assert c.get(f"/status/{job_id}").json()["status"] == "COMPLETED"
        finally:
            emu.faults.api_error_rate = 0.0
            emu.faults.api_error_routes = None


def test_api_key_is_enforced(handler_emulator) -> None:
    url = handler_emulator.url
    assert httpx.get(f"{url}/health").status_code == 401
    wrong = httpx.get(f"{url}/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert httpx.get(f"{url}/health", headers={"Authorization": API_KEY}).status_code == 200
    bearer = httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {API_KEY}"})
    assert set(bearer.json()) >= {"jobs", "workers"}  # + billing (emulator only)
    assert set(bearer.json()["workers"]) >= {"idle", "running", "initializing", "throttled"}
    other = httpx.get(url.rsplit("/", 1)[0] + "/other-endpoint/health")
    assert other.status_code == 404


SDK_CLIENT = """
import json, os, sys
import runpod  # reads RUNPOD_ENDPOINT_BASE_URL now, at import
assert runpod.endpoint_url_base == os.environ["RUNPOD_ENDPOINT_BASE_URL"]
ep = runpod.Endpoint(os.environ["RUNPOD_ENDPOINT_ID"], api_key=os.environ["RUNPOD_API_KEY"])
def item(i, d):
    return {"mode": "worker", "pipeline": "synthetic", "items": [{"id": i, "duration_s": d}]}
out = {}
job = ep.run(item("sdk", 0.1))
out["first_status"] = job.status()
out["output"] = job.output(timeout=60)
out["final_status"] = job.status()
out["run_sync"] = ep.run_sync(item("sdk-sync", 0.0), timeout=60)
slow = ep.run(item("slow", 30))
out["cancel"] = slow.cancel()
out["cancelled_status"] = slow.status()
out["health"] = ep.health()
print("PHASE1 " + json.dumps(out), flush=True)
sys.stdin.readline()  # the test throttles every worker, so what we submit now stays queued
out = {"queued": [ep.run(item(f"q{i}", 0)).status() for i in range(3)]}
out["purge"] = ep.purge_queue()
print("PHASE2 " + json.dumps(out), flush=True)
"""


def _read(proc: subprocess.Popen, tag: str) -> dict:
    for line in proc.stdout:
        if line.startswith(tag + " "):
            return json.loads(line.removeprefix(tag + " "))
    proc.wait(10)
    raise AssertionError(f"no {tag} from the SDK client: {proc.stderr.read()[-3000:]}")


def test_official_sdk_client_against_the_emulator(handler_emulator) -> None:
    emu = handler_emulator
    proc = subprocess.Popen(
        [sys.executable, "-c", SDK_CLIENT],
        env={"PATH": "/usr/bin:/bin", **emu.client_env()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _official_sdk_client(emu, proc)
    finally:
        proc.kill()
        proc.wait(10)


def _official_sdk_client(emu, proc: subprocess.Popen) -> None:
    out = _read(proc, "PHASE1")
    assert out["first_status"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert out["output"]["results"] == [{"id": "sdk", "duration_s": 0.1}]
    assert out["final_status"] == "COMPLETED"
    assert out["run_sync"]["results"] == [{"id": "sdk-sync", "duration_s": 0.0}]
    assert out["cancel"]["status"] == "CANCELLED"
    assert out["cancelled_status"] == "CANCELLED"
    assert out["health"]["jobs"]["completed"] >= 2
    emu.wait_idle(30)
    try:
        emu.faults.max_workers = 0  # every worker throttled: submitted jobs stay queued
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = _read(proc, "PHASE2")
        assert out["queued"] == ["IN_QUEUE"] * 3
        assert out["purge"] == {"removed": 3, "status": "completed"}
        assert emu.health()["jobs"]["inQueue"] == 0
        assert emu.health()["workers"]["throttled"] == 4
    finally:
        emu.faults.max_workers = None
