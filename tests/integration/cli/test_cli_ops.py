"""More of `podfleet` end to end against `podfleet emulate`: progress and endings, wait, retry,
purge, health/workers tables, doctor, --version, unknown commands, an unreachable endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from cli_helpers import REPO, podfleet_cmd

pytestmark = pytest.mark.emulator


def podfleet(emulate, *args: str, env_extra: dict | None = None, timeout_s: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(emulate.env if emulate is not None else {})
    env.update(env_extra or {})
    return subprocess.run(
        [*podfleet_cmd(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def job_file(tmp_path: Path, payload: dict, name: str = "job.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"input": payload}))
    return str(path)


def synthetic(*items: dict, **extra) -> dict:
    return {"mode": "worker", "pipeline": "synthetic", "items": list(items), **extra}


def test_version_and_an_unknown_command_is_never_a_cancel(emulate) -> None:
    version = podfleet(emulate, "--version")
    assert version.returncode == 0 and version.stdout.startswith("podfleet ")
    unknown = podfleet(emulate, "frobnicate", "some-job")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_an_unreachable_endpoint_is_reported_at_once_with_a_hint(emulate) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = podfleet(emulate, "health", "--base-url", f"http://127.0.0.1:{port}/v2")
    assert res.returncode == 1
    assert "cannot reach" in res.stderr and "podfleet emulate" in res.stderr
    assert "retry" not in res.stderr.lower() and len(res.stderr.splitlines()) <= 6


def test_wait_shows_progress_and_a_partial_failure_on_stderr(emulate, tmp_path) -> None:
    f = job_file(
        tmp_path,
        synthetic({"id": "ok", "duration_s": 2.5}, {"id": "bad", "fail": "item"}, {"id": "c"}),
    )
    res = podfleet(emulate, "submit", f, "--wait")
    assert res.returncode == 1  # completed, with a failed item
    assert json.loads(res.stdout)["status"] == "COMPLETED"
    assert "stage work" in res.stderr  # the worker's progress reached the display
    assert (
        "1 of 3 items failed" in res.stderr and "bad (work): synthetic item failure" in res.stderr
    )


def test_wait_reattaches_retry_requeues_and_purge_empties_the_queue(emulate, tmp_path) -> None:
    submitted = podfleet(
        emulate, "submit", job_file(tmp_path, synthetic({"id": "w", "duration_s": 1}))
    )
    job_id = json.loads(submitted.stdout)["id"]
    waited = podfleet(emulate, "wait", job_id)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status"] == "COMPLETED" and "COMPLETED" in waited.stderr

    failing = synthetic({"id": "f"}, options={"fail_job_attempts": 99})
    failed_id = json.loads(podfleet(emulate, "submit", job_file(tmp_path, failing)).stdout)["id"]
    status = podfleet(emulate, "wait", failed_id)
    assert status.returncode == 1 and "FAILED" in status.stderr
    retried = podfleet(emulate, "retry", failed_id)
    assert retried.returncode == 0 and json.loads(retried.stdout)["status"] == "IN_QUEUE"
    assert podfleet(emulate, "wait", failed_id).returncode == 1  # fails again, as it should

    slow = job_file(tmp_path, synthetic({"id": "s", "duration_s": 30}), "slow.json")
    ids = [json.loads(podfleet(emulate, "submit", slow).stdout)["id"] for _ in range(4)]
    purged = podfleet(emulate, "purge")
    assert purged.returncode == 0 and json.loads(purged.stdout)["removed"] >= 2  # 2 workers
    for job_id in ids:
        podfleet(emulate, "cancel", job_id)


def test_health_workers_and_doctor_for_people_and_scripts(emulate) -> None:
    table = podfleet(emulate, "health")
    assert table.returncode == 0 and "idle" in table.stdout and "cli-ep" in table.stdout
    assert "worker-seconds" in table.stdout
    workers = podfleet(emulate, "workers", "--json")
    listing = json.loads(workers.stdout)
    assert listing["summary"]["total"] == 2 and {w["id"] for w in listing["workers"]} == {
        "worker-0",
        "worker-1",
    }
    doctor = podfleet(emulate, "doctor", "--sample", "0.2")
    assert doctor.returncode == 0 and "healthy" in doctor.stdout, doctor.stdout + doctor.stderr
    report = json.loads(podfleet(emulate, "doctor", "--sample", "0", "--json").stdout)
    assert report["healthy"] is True and report["findings"] == []
    bad = podfleet(emulate, "doctor", "--sample", "0", env_extra={"RUNPOD_API_KEY": "nope-key"})
    assert bad.returncode == 1 and "wrong-key" in bad.stdout and "nope-key" not in bad.stdout


def test_the_dashboard_url_is_printed_and_serves(emulate) -> None:
    assert emulate.dashboard.endswith("/dashboard")
    page = httpx.get(emulate.dashboard, timeout=10)
    assert page.status_code == 200 and "dashboard.js" in page.text
    assert httpx.get(emulate.dashboard + "/static/dashboard.js").status_code == 200
    assert not any("cli-secret-key" in line for line in emulate.lines)  # never printed
