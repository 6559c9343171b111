"""`podfleet` end to end: `emulate` in a subprocess, then submit / status / cancel / health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from cli_helpers import REPO, podfleet_cmd

pytestmark = pytest.mark.emulator


def podfleet(emulate, *args: str, env_extra: dict | None = None, timeout_s: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update(emulate.env)
    for key, value in (env_extra or {}).items():
        if value is None:
            env.pop(key, None)  # unset
        else:
            env[key] = value
    return subprocess.run(
        [*podfleet_cmd(), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def job_file(tmp_path: Path, *items: dict, name: str = "job.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"input": {"pipeline": "synthetic", "items": list(items)}}))
    return str(path)


def test_submit_wait_prints_the_result_and_exits_0(emulate, tmp_path):
    f = job_file(tmp_path, {"id": "a", "duration_s": 0.2}, {"id": "b", "duration_s": 0.2})
    res = podfleet(emulate, "submit", f, "--wait")
    assert res.returncode == 0, res.stderr
    state = json.loads(res.stdout)
    assert state["status"] == "COMPLETED"
    assert [r["id"] for r in state["output"]["results"]] == ["a", "b"]
    assert "COMPLETED" in res.stderr  # the live display ends on the final status
    assert "cli-secret-key" not in res.stdout + res.stderr


def test_failed_items_exit_1(emulate, tmp_path):
    f = job_file(tmp_path, {"id": "bad", "fail": "item"})
    res = podfleet(emulate, "submit", f, "--wait")
    assert res.returncode == 1
    assert json.loads(res.stdout)["output"]["errors"][0]["item_id"] == "bad"


def test_submit_status_cancel_and_health_with_flags(emulate, tmp_path):
    f = job_file(tmp_path, {"id": "slow", "duration_s": 60})
    flags = ["--base-url", emulate.env["RUNPOD_ENDPOINT_BASE_URL"], "--endpoint-id", "cli-ep"]
    flags += ["--api-key", "cli-secret-key"]
    no_env = {"RUNPOD_ENDPOINT_BASE_URL": None, "RUNPOD_ENDPOINT_ID": None, "RUNPOD_API_KEY": None}
    submitted = podfleet(emulate, "submit", f, *flags, env_extra=no_env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]

    status = podfleet(emulate, "status", job_id, *flags, env_extra=no_env)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] in (
        "IN_QUEUE",
        "IN_PROGRESS",
    )
    cancel = podfleet(emulate, "cancel", job_id, *flags, env_extra=no_env)
    assert cancel.returncode == 0 and json.loads(cancel.stdout)["status"] == "CANCELLED"
    after = podfleet(emulate, "status", job_id, *flags, env_extra=no_env)
    assert after.returncode == 1 and json.loads(after.stdout)["status"] == "CANCELLED"

    health = podfleet(emulate, "health", "--json", *flags, env_extra=no_env)
    assert health.returncode == 0, health.stderr
    body = json.loads(health.stdout)
    assert set(body) >= {"jobs", "workers"}
    assert {"completed", "failed", "inProgress", "inQueue"} <= set(body["jobs"]), body["jobs"]
    assert all(type(n) is int for n in body["jobs"].values()), body["jobs"]


def test_errors_are_clear_and_coded(emulate, tmp_path):
    missing = podfleet(emulate, "submit", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad_key = podfleet(emulate, "health", env_extra={"RUNPOD_API_KEY": "wrong-key-123"})
    assert bad_key.returncode == 1 and "API key" in bad_key.stderr
    assert "wrong-key-123" not in bad_key.stderr + bad_key.stdout
    unknown = podfleet(emulate, "status", "no-such-job")
    assert unknown.returncode == 1 and "unknown or expired" in unknown.stderr


def test_ctrl_c_stops_the_emulator_cleanly(emulate):
    emulate.proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
    assert emulate.proc.wait(60) == 0
