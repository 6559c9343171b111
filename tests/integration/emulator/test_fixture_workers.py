"""Streaming, cancellation, timeouts, ttl, progress and webhooks with real SDK worker processes."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from podfleet.emulator import run_emulator

from tests.integration.emulator.helpers import FIXTURE_HANDLERS, client_for, config

pytestmark = pytest.mark.emulator


def test_generator_chunks_arrive_through_stream(stream_emulator) -> None:
    emu = stream_emulator
    with client_for(emu) as c:
        job_id = c.post("/run", json={"input": {"chunks": 4, "interval_s": 0.05}}).json()["id"]
        chunks, status = [], "IN_QUEUE"
        while status not in ("COMPLETED", "FAILED"):  # /stream is a long-poll: no sleeps here
            body = c.get(f"/stream/{job_id}").json()
            chunks += [part["output"] for part in body["stream"]]
            status = body["status"]
        assert status == "COMPLETED"
        assert chunks == [{"chunk": i} for i in range(4)]
        final = c.get(f"/status/{job_id}").json()
        assert final["output"] == chunks  # return_aggregate_stream
        assert c.get(f"/stream/{job_id}").json() == {"status": "COMPLETED", "stream": []}


def test_cancel_stops_a_running_async_job_and_its_late_result_is_ignored(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        job = {"input": {"sleep_s": 60, "late_result": True}}
        job_id = c.post("/run", json=job).json()["id"]
        emu.wait_job(job_id, lambda j: j is not None and j["status"] == "IN_PROGRESS")
        assert c.post(f"/cancel/{job_id}").json() == {"id": job_id, "status": "CANCELLED"}
        # the handler only returns {"late": True} once job-stop cancelled it; the SDK posts it
        info = emu.wait_job(job_id, lambda j: j is not None and bool(j["ignored_posts"]))
        assert info is not None and info["status"] == "CANCELLED"
        assert info["ignored_posts"][0]["body"] == {"output": {"late": True}}
        assert c.get(f"/status/{job_id}").json()["status"] == "CANCELLED"
        emu.wait_idle(30)


def test_execution_timeout_ends_a_job_timed_out_and_stops_it(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        job = {"input": {"sleep_s": 60, "late_result": True}, "policy": {"executionTimeout": 500}}
        job_id = c.post("/run", json=job).json()["id"]
        info = emu.wait_job(job_id, lambda j: j is not None and bool(j["ignored_posts"]))
        assert info is not None and info["status"] == "TIMED_OUT"
        body = c.get(f"/status/{job_id}").json()
        assert body["status"] == "TIMED_OUT" and "execution timeout" in body["error"]
        assert body["executionTime"] >= 500
        # a TIMED_OUT job can be retried (same id, same policy: it times out again)
        assert c.post(f"/retry/{job_id}").json() == {"id": job_id, "status": "IN_QUEUE"}
        again = emu.wait_job(job_id, lambda j: j is not None and len(j["ignored_posts"]) == 2)
        assert again is not None and again["status"] == "TIMED_OUT" and again["attempts"] == 2
        emu.wait_idle(30)


def test_ttl_expiry_deletes_the_job(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        try:
            emu.faults.max_workers = 0  # nobody takes it: it expires in the queue
            job_id = c.post("/run", json={"input": {"sleep_s": 0}, "policy": {"ttl": 300}}).json()[
                "id"
            ]
            assert c.get(f"/status/{job_id}").json()["status"] == "IN_QUEUE"
            emu.wait_job(job_id, lambda j: j is None, timeout_s=30)
            r = c.get(f"/status/{job_id}")
            assert r.status_code == 404 and "not found" in r.json()["error"]
        finally:
            emu.faults.max_workers = None


def test_progress_shows_while_running_and_late_progress_is_ignored(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        job = {"input": {"sleep_s": 60, "progress": {"done": 1, "total": 3}}}
        job_id = c.post("/run", json=job).json()["id"]
        emu.wait_job(job_id, lambda j: j is not None and j["progress"] is not None)
        body = c.get(f"/status/{job_id}").json()
        assert body["status"] == "IN_PROGRESS" and body["output"] == {"done": 1, "total": 3}
        c.post(f"/cancel/{job_id}")

        job = {"input": {"sleep_s": 0, "echo": "x", "late_progress_s": 0.3}}
        job_id = c.post("/run", json=job).json()["id"]
        info = emu.wait_job(job_id, lambda j: j is not None and bool(j["ignored_posts"]))
        assert info is not None and info["status"] == "COMPLETED"
        assert "progress update after the job was COMPLETED" in info["ignored_posts"][0]["reason"]
        assert c.get(f"/status/{job_id}").json()["output"] == {"slept_s": 0, "echo": "x"}
        emu.wait_idle(30)


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list, threading.Event]]:
    received: list = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()
            arrived.set()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, arrived
    server.shutdown()


def test_webhook_gets_the_final_status_and_failures_are_reported(
    slow_emulator, webhook_receiver
) -> None:
    emu = slow_emulator
    url, received, arrived = webhook_receiver
    with client_for(emu) as c:
        job_id = c.post("/run", json={"input": {"fail": "boom"}, "webhook": url}).json()["id"]
        assert arrived.wait(30)
        assert received[0]["id"] == job_id and received[0]["status"] == "FAILED"
        error = json.loads(received[0]["error"])  # the SDK sends the exception as a JSON string
        assert error["error_message"] == "boom" and error["worker_id"].startswith("worker-")
        remote = c.post(
            "/run", json={"input": {"sleep_s": 0}, "webhook": "http://example.com/hook"}
        )
        assert remote.status_code == 400 and "loopback" in remote.json()["error"]


def test_a_silent_worker_is_lost_and_its_job_runs_again(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        job_id = c.post("/run", json={"input": {"sleep_s": 0.5, "echo": "again"}}).json()["id"]
        running = emu.wait_job(job_id, lambda j: j is not None and j["status"] == "IN_PROGRESS")
        assert running is not None
        frozen = emu.kill_worker(running["worker_id"], sig=signal.SIGSTOP)  # and its heartbeat
        info = emu.wait_job(job_id, timeout_s=60)
        assert info is not None and info["status"] == "COMPLETED" and info["retries"] == 1
        assert info["output"] == {"slept_s": 0.5, "echo": "again"}
        worker = next(w for w in emu.workers() if w["id"] == frozen)
        assert worker["last_exit"].startswith("lost (silent for") and worker["restarts"] >= 1


def test_a_crash_looping_worker_shows_unhealthy_and_keeps_the_job_queued(tmp_path) -> None:
    cmd = [sys.executable, "-c", "import sys; sys.exit(3)"]
    cfg = config(tmp_path, workers=1, cmd=cmd, restart_backoff_s=0.01, unhealthy_after_crashes=3)
    with run_emulator(cfg) as emu, client_for(emu) as c:
        emu.wait_health(lambda h: h["workers"]["unhealthy"] == 1, 30)
        job_id = c.post("/run", json={"input": {"sleep_s": 0}}).json()["id"]
        assert c.get(f"/status/{job_id}").json()["status"] == "IN_QUEUE"
        worker = emu.workers()[0]
        assert worker["last_exit"] == "exited with code 3" and worker["restarts"] >= 2


def test_a_worker_that_never_asks_for_a_job_turns_unhealthy(tmp_path) -> None:
    cmd = [sys.executable, "-c", "import time; time.sleep(120)"]  # starts, never polls
    with run_emulator(config(tmp_path, workers=1, cmd=cmd, ready_timeout_s=1.5)) as emu:
        assert emu.workers()[0]["state"] == "initializing"
        emu.wait_health(lambda h: h["workers"]["unhealthy"] == 1, 30)


def test_refresh_worker_restarts_the_worker_after_its_result(slow_emulator) -> None:
    emu = slow_emulator
    with client_for(emu) as c:
        body = c.post("/runsync", json={"input": {"refresh": True}}).json()
        assert body["status"] == "COMPLETED" and body["output"] == {"refreshed": True}
        wid = body["workerId"]

        def restarted(workers: list[dict]) -> bool:
            w = next(w for w in workers if w["id"] == wid)
            return w["last_exit"] == "exited with code 0" and w["restarts"] >= 1

        emu.wait_workers(restarted, 60)
        assert emu.health()["workers"]["unhealthy"] == 0


def test_a_concurrent_sdk_worker_takes_batches_and_exit_drains_it(tmp_path) -> None:
    cmd = [sys.executable, "-u", str(FIXTURE_HANDLERS / "slow_handler.py"), "--concurrency", "3"]
    with run_emulator(config(tmp_path, workers=1, cmd=cmd)) as emu, client_for(emu) as c:
        emu.wait_ready(60, polling=True)
        try:
            emu.faults.max_workers = 0  # queue all three, then let the worker take them at once
            job = {"input": {"sleep_s": 30}}
            ids = [c.post("/run", json=job).json()["id"] for _ in range(3)]
            emu.faults.max_workers = None
            emu.wait_health(lambda h: h["jobs"]["inProgress"] == 3, 30)
        finally:
            emu.faults.max_workers = None
        assert {emu.job(i)["worker_id"] for i in ids} == {"worker-0"}
        for i in ids:
            assert c.post(f"/cancel/{i}").json()["status"] == "CANCELLED"
        emu.wait_idle(30)  # the worker confirmed (pings) that all three were stopped
        last = {"sleep_s": 1.5, "echo": "last", "progress": "started"}
        job_id = c.post("/run", json={"input": last}).json()["id"]
        # Wait for the handler itself (its progress post), not just the take: a job the SDK has
        # taken but not yet started when SIGTERM arrives is dropped (the emulator re-queues it).
        emu.wait_job(job_id, lambda j: j is not None and j["progress"] == "started")
    info = emu.job(job_id)  # read after exit: the worker got SIGTERM, its job still completed
    assert info["status"] == "COMPLETED" and info["output"] == {"slept_s": 1.5, "echo": "last"}
    assert emu.workers()[0]["last_exit"] == "exited with code 0"
