"""`podfleet emulate` as a subprocess, for the CLI's integration tests (one per module)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from cli_helpers import REPO, podfleet_cmd


@dataclass
class EmulateProcess:
    proc: subprocess.Popen
    env: dict[str, str]  # RUNPOD_ENDPOINT_BASE_URL / _ID / RUNPOD_API_KEY as printed
    url: str
    lines: list[str] = field(default_factory=list)
    dashboard: str = ""


def _read_lines(proc: subprocess.Popen, out: queue.Queue) -> None:
    for line in proc.stdout:  # type: ignore[union-attr]
        out.put(line.rstrip("\n"))
    out.put(None)


@pytest.fixture(scope="module")
def emulate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulateProcess]:
    home = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["DATABASE_URL"] = f"sqlite:///{home}/cli.db"
    cmd = [*podfleet_cmd(), "emulate", "--workers", "2", "--endpoint-id", "cli-ep"]
    cmd += ["--api-key", "cli-secret-key"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc, lines), daemon=True).start()
    seen: list[str] = []
    exports: dict[str, str] = {}
    url = dashboard = ""
    deadline = time.monotonic() + 60
    while (time.monotonic() < deadline and not seen) or (seen and "Ctrl-C" not in seen[-1]):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if m := re.match(r"\s*export (RUNPOD_\w+)=(\S+)", line):
            exports[m.group(1)] = m.group(2)
        if m := re.search(r"RunPod emulator: (http://127\.0\.0\.1:\d+/v2/\S+)", line):
            url = m.group(1)
        if m := re.search(r"Dashboard: (http://\S+)", line):
            dashboard = m.group(1)
    if "RUNPOD_ENDPOINT_BASE_URL" not in exports:
        proc.kill()
        pytest.fail("podfleet emulate printed no base URL:\n" + "\n".join(seen[-30:]))
    if any("cli-secret-key" in line for line in seen):
        proc.kill()
        pytest.fail("podfleet emulate printed its API key:\n" + "\n".join(seen))
    exports["RUNPOD_API_KEY"] = "cli-secret-key"  # never printed: the client knows it
    handle = EmulateProcess(proc, exports, url, seen, dashboard)
    threading.Thread(  # keep draining the workers' logs so the pipe never fills
        target=lambda: [handle.lines.append(x) for x in iter(lines.get, None)], daemon=True
    ).start()
    yield handle
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
