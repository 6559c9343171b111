"""Fixtures for the caller-side tests: a real Redis (builder/redis.sh), unique key prefixes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """PODFLEET_TEST_REDIS_URL (builder/test.sh), else a throwaway server from builder/redis.sh."""
    url = os.environ.get("PODFLEET_TEST_REDIS_URL")
    if not url:
        out = subprocess.run(
            ["bash", str(REPO_ROOT / "builder" / "redis.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        url = out.stdout.strip()
    return url


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test (the Redis server may be shared)."""
    return f"pft-{uuid.uuid4().hex[:10]}"


class Stack:
    """The emulator (4 SDK workers), a Celery worker, two uvicorn apps (celery and direct).

    One per session (started in ~20 s): tests reset any fault they inject, in `finally`."""

    def __init__(self, emu, setup: dict, tmp: Path) -> None:
        self.emu, self.setup, self.tmp = emu, setup, tmp
        self.procs: dict = {}
        self.celery_url = self.direct_url = ""
        from podfleet.integrations import CallerConfig
        from podfleet.integrations.celery import create_celery_app

        self.config = CallerConfig(**setup["config"])
        self.celery = create_celery_app(  # the test's own handle on the same broker
            self.config,
            broker_url=setup["redis_url"],
            result_backend=setup["redis_url"],
            visibility_timeout_s=setup["visibility_timeout_s"],
            transport_options={"unacked_restore_interval": 1, "unacked_restore_throttle": 1},
        )

    def start_worker(self, name: str, concurrency: int = 4):
        from tests.integration.caller.stack import start_celery_worker, wait_for

        node = f"{name}-{self.config.key_prefix}"  # unique: the Redis may be shared
        proc = start_celery_worker(self.setup, self.tmp, node, concurrency)
        self.procs[name] = proc

        def pong() -> bool:
            if not proc.alive():
                raise RuntimeError(f"celery worker exited:\n{proc.tail()}")
            replies = self.celery.control.ping(timeout=0.5) or []
            return any(next(iter(r)).startswith(f"{node}@") for r in replies)

        wait_for(pong, 60, f"celery worker {name}", every_s=0.2)
        return proc

    def submissions(self, item_id: str) -> list[str]:
        """Ids of the emulator's jobs whose input names this synthetic item: every /run that
        created a job is one (read from the emulator's job table, on its loop)."""
        emu = self.emu

        def scan() -> list[str]:
            return [
                job.id
                for job in emu._state.jobs.values()
                if isinstance(job.input, dict)
                and any(i.get("id") == item_id for i in job.input.get("items") or [])
            ]

        return emu._call(scan)


_RUNNING: dict[str, contextlib.ExitStack] = {}


def _stop_stack() -> None:
    exits = _RUNNING.pop("stack", None)
    if exits is not None:
        exits.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, redis_url):
    """Session-scoped so every module here shares one (about 20 s to start), but stopped as
    soon as the last test of this directory ends (pytest_runtest_teardown below): its dozen
    processes do not idle through the rest of the suite."""
    from podfleet.emulator import run_emulator

    from tests.integration.caller.stack import free_port, start_uvicorn
    from tests.integration.emulator.helpers import API_KEY, config

    tmp = tmp_path_factory.mktemp("caller")
    prefix = f"pft-{uuid.uuid4().hex[:10]}"
    celery_port = free_port()
    exits = contextlib.ExitStack()
    _RUNNING["stack"] = exits
    try:
        emu = exits.enter_context(run_emulator(config(tmp, workers=4)))
        setup = {
            "config": {
                "endpoint_id": emu.endpoint_id,
                "base_url": emu.base_url,
                "api_key": API_KEY,
                "redis_url": redis_url,
                "key_prefix": prefix,
                "queue": f"{prefix}.q",
                "high_priority_queue": f"{prefix}.high",
                "first_poll_s": 0.2,
                "poll_interval_s": 1.0,
                "webhook_poll_s": 2.0,
                "webhook_base_url": f"http://127.0.0.1:{celery_port}",
                "error_backoff_s": 0.2,
                "error_backoff_max_s": 2.0,
                "wait_timeout_s": 120,
                "result_expires_s": 600,
                "run_retries": 8,
                "api_max_retries": 8,
            },
            "redis_url": redis_url,
            "visibility_timeout_s": 8,
            "marker_dir": str(tmp),
        }
        s = Stack(emu, setup, tmp)
        exits.callback(lambda: [proc.stop() for proc in s.procs.values()])
        s.start_worker("w1")
        s.procs["api-celery"], s.celery_url = start_uvicorn(setup, tmp, "celery", celery_port)
        s.procs["api-direct"], s.direct_url = start_uvicorn(setup, tmp, "direct")
        emu.wait_ready(60)
    except BaseException:
        _stop_stack()
        raise
    yield s
    _stop_stack()


def pytest_runtest_teardown(item, nextitem) -> None:
    """After this directory's last test (the next one is elsewhere, or none), stop the stack."""
    if "stack" in _RUNNING and (nextitem is None or nextitem.path.parent != item.path.parent):
        _stop_stack()
