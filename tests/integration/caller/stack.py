"""The real parts of the caller tests as processes: Celery workers, uvicorn servers, Flower.

Each runs in its own session (process group), so a test can SIGKILL a whole Celery worker (its
prefork children too), and every process is stopped when its fixture ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "FLOWER_AUTH",
    "Proc",
    "free_port",
    "start_celery_worker",
    "start_flower",
    "start_uvicorn",
    "wait_for",
]

REPO_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.1) -> Any:
    """Poll `check()` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as exc:
            last = exc
        time.sleep(every_s)
    raise TimeoutError(f"{what} not within {timeout_s}s (last error: {last!r})")


class Proc:
    """A child process in its own session, logging to a file."""

    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO_ROOT
    ) -> None:
        self.name, self.log = name, log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children)."""
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout_s: float = 10) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        with contextlib.suppress(ProcessLookupError):  # orphaned children of a killed worker
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log_file.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def _env(setup: dict[str, Any], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.update({"PODFLEET_CALLER_TEST": json.dumps(setup), "PYTHONUNBUFFERED": "1", **extra})
    return env


def start_celery_worker(setup: dict[str, Any], tmp: Path, name: str, concurrency: int = 4) -> Proc:
    queues = f"{setup['config']['high_priority_queue']},{setup['config']['queue']}"
    cmd = [
        sys.executable, "-m", "celery", "-A", "tests.integration.caller.celery_app", "worker",
        "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return Proc(name, cmd, _env(setup), tmp / f"{name}.log")


def start_uvicorn(
    setup: dict[str, Any], tmp: Path, mode: str, port: int | None = None
) -> tuple[Proc, str]:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "tests.integration.caller.fastapi_app:create",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
    ]  # fmt: skip
    env = _env(setup, PODFLEET_CALLER_MODE=mode, PODFLEET_CALLER_WEBHOOK_BASE=url)
    proc = Proc(f"uvicorn-{mode}", cmd, env, tmp / f"uvicorn-{mode}.log")
    wait_for(lambda: httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200, 30, "uvicorn")
    return proc, url


FLOWER_AUTH = ("podfleet", "flower-test-password")


def start_flower(setup: dict[str, Any], tmp: Path) -> tuple[Proc, str]:
    """Flower with HTTP basic auth (its API refuses unauthenticated calls by default)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "celery", "-A", "tests.integration.caller.celery_app", "flower",
        "--address=127.0.0.1", f"--port={port}", f"--basic-auth={':'.join(FLOWER_AUTH)}",
    ]  # fmt: skip
    proc = Proc("flower", cmd, _env(setup), tmp / "flower.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        return httpx.get(f"{url}/api/workers", auth=FLOWER_AUTH, timeout=5).status_code == 200

    wait_for(up, 30, "flower")
    return proc, url
