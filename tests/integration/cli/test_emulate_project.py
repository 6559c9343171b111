"""`podfleet emulate` runs a user's own workers: the handler.py of the directory it starts in (or
--cwd / --worker-cmd), with --env and fault flags; its terminal shows one bounded line per event
with the worker's id; a plain `runpod.serverless.start` worker stops promptly on Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from cli_helpers import podfleet_cmd

pytestmark = pytest.mark.emulator

PLAIN_HANDLER = """
import os, time
import runpod

def handler(job):
    inp = job["input"]
    if inp.get("shout"):
        print("x" * 5000, flush=True)  # one very long line
    time.sleep(float(inp.get("sleep_s", 0)))
    return {"greeting": os.environ.get("GREETING", "none"), "cwd": os.getcwd()}

runpod.serverless.start({"handler": handler})
"""


class Emulate:
    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        self.proc = subprocess.Popen(
            [*podfleet_cmd(), "emulate", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_for(r"RunPod emulator: (\S+)").group(1)
        self.wait_for(r"Ctrl-C to stop")

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))
            self._q.put(line)
        self._q.put(None)

    def wait_for(self, pattern: str, timeout_s: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout_s
        for line in list(self.lines):
            if m := re.search(pattern, line):
                return m
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no {pattern!r} in:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> float:
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C delivers
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        time.sleep(0.2)
        return time.monotonic() - t0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "my-project"
    root.mkdir()
    (root / "handler.py").write_text(PLAIN_HANDLER)
    return root


def run_job(url: str, payload: dict) -> dict:
    r = httpx.post(f"{url}/runsync", json={"input": payload}, timeout=90)
    return r.json()


def test_runs_the_handler_py_of_its_directory_with_env(project: Path) -> None:
    emu = Emulate(["--workers", "1", "--env", "GREETING=hello"], cwd=project)
    try:
        done = run_job(emu.url, {"sleep_s": 0, "shout": True})
        assert done["status"] == "COMPLETED", done
        assert done["output"] == {"greeting": "hello", "cwd": str(project)}
        emu.wait_for(r"worker-0 +INFO +job \w{8} +.*Finished")
    finally:
        took_s = emu.stop()
    assert emu.proc.returncode == 0
    assert took_s < 20, f"a plain SDK worker took {took_s:.1f}s to stop"
    assert not any("SIGKILL" in line for line in emu.lines)
    long = [line for line in emu.lines if "xxxxxxxx" in line]
    assert long and all(len(line) <= 240 for line in long) and "chars)" in long[0]
    odd = [
        line
        for line in emu.lines
        if not line.startswith(("RunPod", "Dashboard", "Client", "  ", "Ctrl-C", "stopping"))
        and not re.match(r"\d\d:\d\d:\d\d \S+ ", line)
    ]
    assert odd == [], emu.lines


def test_cwd_worker_cmd_and_fault_flags_from_another_directory(project: Path, tmp_path) -> None:
    cmd = f"{sys.executable} -u handler.py"
    args = ["--workers", "2", "--cwd", str(project), "--worker-cmd", cmd, "--max-workers", "1"]
    args += ["--error-rate", "1", "--error-routes", "status", "--error-statuses", "503"]
    emu = Emulate(args, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        health = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{emu.url}/health", timeout=10).json()
            if health["workers"]["idle"] == 1 and health["workers"]["throttled"] == 1:
                break
            time.sleep(0.3)
        assert health["workers"]["throttled"] == 1, health  # --max-workers 1 of 2
        parked = httpx.post(f"{emu.url}/run", json={"input": {}}).json()
        time.sleep(1)  # an idle worker is there, yet an empty input is never dispatched
        assert "id" in parked
        assert httpx.get(f"{emu.url}/health").json()["jobs"]["inQueue"] == 1
        job = httpx.post(f"{emu.url}/run", json={"input": {"sleep_s": 0}}).json()
        assert httpx.get(f"{emu.url}/status/{job['id']}").status_code == 503  # --error-*
    finally:
        emu.stop()
    assert emu.proc.returncode == 0


def test_bad_flags_are_usage_errors(tmp_path) -> None:
    for args, text in (
        (["--env", "NOEQUALS"], "KEY=VALUE"),
        (["--cwd", str(tmp_path / "missing")], "not a directory"),
        (["--error-rate", "2"], "error-rate"),
        (["--workers", "2", "--workers-min", "3"], "workers_min"),
    ):
        res = subprocess.run(
            [*podfleet_cmd(), "emulate", *args], capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 2 and text in res.stderr, (args, res.stderr)


def test_the_default_worker_is_the_directorys_handler_else_podfleets_own(project, tmp_path) -> None:
    from podfleet.cli.emulate import default_worker_cmd

    assert default_worker_cmd(project)[1:] == ["-u", "handler.py"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert default_worker_cmd(empty)[1:] == ["-u", "-m", "podfleet"]  # a wheel has no handler.py
