"""Test your pipeline offline: podfleet's pytest plugin (entry point `pytest11`, loaded by itself
once podfleet is installed) and the context managers behind its fixtures.

Three levels, fastest first:
- `podfleet_run_job(input)`: podfleet's handler called in the test process (what
  `python handler.py --test_input` runs), no queue; the pipelines must be imported/registered;
- `podfleet_inprocess` (async; needs pytest-asyncio): the emulator's queue with in-process workers
  calling the handler: RunPod's job life cycle without processes;
- `podfleet_endpoint`: the emulator on 127.0.0.1 with real SDK worker processes running *your*
  worker command (default `python -u handler.py` in the pytest rootdir), and a client for it.
  A job with `"workers": N` fans out over them as it would on RunPod.

Configure with ini options (`podfleet_worker_cmd`, `podfleet_worker_cwd`, `podfleet_workers`) or by
overriding the fixtures of the same names in a conftest.py. Outside pytest, use `endpoint()` and
`inprocess_endpoint()` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "InProcessEndpoint",
    "JobFailed",
    "WorkerEndpoint",
    "endpoint",
    "inprocess_endpoint",
    "run_job",
]


class JobFailed(AssertionError):
    """A job that did not complete; carries its final state."""

    def __init__(self, state: Any) -> None:
        super().__init__(f"job {state.id} ended {state.status}: {state.error or state.output!r}")
        self.state = state


def _payload(job_input: Mapping[str, Any]) -> dict[str, Any]:
    """Accept `{"input": {...}}` (a test_input.json) or the input itself."""
    return dict(job_input["input"]) if set(job_input) == {"input"} else dict(job_input)


@dataclass
class WorkerEndpoint:
    """An emulated endpoint with worker processes, and a blocking client for it."""

    emulator: Any  # podfleet.emulator.Emulator
    client: Any  # podfleet.api.SyncEndpointClient
    log_path: Path | None

    @property
    def env(self) -> dict[str, str]:
        """What a caller needs: RUNPOD_ENDPOINT_BASE_URL, RUNPOD_ENDPOINT_ID, RUNPOD_API_KEY."""
        return self.emulator.client_env()

    def run(self, job_input: Mapping[str, Any], *, timeout_s: float = 120) -> Any:
        """Submit a job (/run), wait for its end, return its final JobState."""
        job = self.client.run(_payload(job_input))
        return self.client.wait(job.id, timeout_s=timeout_s, interval_s=0.25)

    def output(self, job_input: Mapping[str, Any], *, timeout_s: float = 120) -> Any:
        """The output of a job that must complete (raises JobFailed otherwise)."""
        state = self.run(job_input, timeout_s=timeout_s)
        if state.status.value != "COMPLETED":
            raise JobFailed(state)
        return state.output

    def worker_log(self) -> str:
        """The workers' stdout and stderr so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def endpoint(
    worker_cmd: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 180,
    **config: Any,
) -> Iterator[WorkerEndpoint]:
    """The emulator running `workers` processes of `worker_cmd` in `cwd` (real SDK workers).

    `config`: more `EmulatorConfig` fields (faults=FaultConfig(...), api_key=..., ...). Waits until
    every worker polls for jobs; their output goes to `WorkerEndpoint.log_path`.
    """
    from podfleet.api import SyncEndpointClient
    from podfleet.emulator import EmulatorConfig, run_emulator

    log_dir = Path(tempfile.mkdtemp(prefix="podfleet-testing-"))
    log_path = Path(config.pop("worker_log_path", log_dir / "workers.log"))
    settings: dict[str, Any] = {"shutdown_grace_s": 10.0, **config}
    cfg = EmulatorConfig(
        workers=workers,
        worker_cmd=list(worker_cmd),
        worker_cwd=Path(cwd),
        worker_env=dict(env or {}),
        worker_log_path=log_path,
        **settings,
    )
    with run_emulator(cfg) as emu:
        _wait_ready(emu, ready_timeout_s, log_path)
        env_ = emu.client_env()
        client = SyncEndpointClient(
            endpoint_id=env_["RUNPOD_ENDPOINT_ID"],
            base_url=env_["RUNPOD_ENDPOINT_BASE_URL"],
            api_key=env_["RUNPOD_API_KEY"],
            wait_interval_s=0.25,
        )
        try:
            yield WorkerEndpoint(emu, client, log_path)
        finally:
            client.close()


def _wait_ready(emu: Any, timeout_s: float, log_path: Path) -> None:
    """Until every worker not throttled polls for jobs; a crash-looping worker fails at once."""

    def tail() -> str:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        return f"\n--- worker log (tail) ---\n{text[-3000:]}"

    deadline = time.monotonic() + timeout_s
    while True:
        infos = emu.workers()
        states = [w["state"] for w in infos]
        want = [st for st in states if st != "throttled"]
        if want and all(st in ("idle", "running") for st in want):
            return
        broken = [w for w in infos if w["state"] == "unhealthy"]
        if broken:
            exits = ", ".join(f"{w['id']}: {w['last_exit']}" for w in broken)
            raise RuntimeError(f"emulated workers are crash-looping ({exits}){tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready in {timeout_s:g}s: {states}{tail()}")
        time.sleep(0.1)


@dataclass
class InProcessEndpoint:
    """The emulator's queue with in-process workers, and an async client for it."""

    emulator: Any  # podfleet.emulator.InProcessEmulator
    client: Any  # podfleet.api.EndpointClient

    async def run(self, job_input: Mapping[str, Any], *, timeout_s: float = 60) -> Any:
        job = await self.client.run(_payload(job_input))
        return await self.client.wait(job.id, timeout_s=timeout_s, interval_s=0.05)

    async def output(self, job_input: Mapping[str, Any], *, timeout_s: float = 60) -> Any:
        state = await self.run(job_input, timeout_s=timeout_s)
        if state.status.value != "COMPLETED":
            raise JobFailed(state)
        return state.output


@contextlib.asynccontextmanager
async def inprocess_endpoint(
    *, workers: int = 2, handler: Callable[[dict[str, Any]], Any] | None = None, **config: Any
) -> AsyncIterator[InProcessEndpoint]:
    """`async with inprocess_endpoint() as ep:` workers call podfleet's handler (or `handler`)
    in this process; a job runs in worker mode here (fan-out needs `endpoint()`)."""
    from podfleet.api import EndpointClient
    from podfleet.emulator import EmulatorConfig, run_in_process

    if handler is None:
        from podfleet.entry import handler as podfleet_handler

        handler = podfleet_handler
    cfg = EmulatorConfig(workers=workers, **config)
    async with run_in_process(cfg, handler=handler) as emu:
        client = EndpointClient(
            endpoint_id=emu.endpoint_id,
            base_url=emu.base_url,
            api_key=cfg.api_key,
            transport=emu.transport,
            wait_interval_s=0.05,
        )
        try:
            yield InProcessEndpoint(emu, client)
        finally:
            await client.aclose()


def run_job(job_input: Mapping[str, Any], *, job_id: str = "test-job", runner: Any = None) -> Any:
    """Run one job through podfleet's handler in this process; returns its output dict."""
    from podfleet.entry import handler

    job = {"id": job_id, "input": _payload(job_input)}
    if runner is None:
        return asyncio.run(handler(job))
    return runner.run(handler(job))


# --- the pytest plugin -----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "podfleet_worker_cmd",
        "worker command of podfleet_endpoint (default: this Python, -u handler.py)",
        default="",
    )
    parser.addini(
        "podfleet_worker_cwd", "worker directory (default: the pytest rootdir)", default=""
    )
    parser.addini("podfleet_workers", "worker processes of podfleet_endpoint", default="2")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "podfleet: runs podfleet's emulator with worker processes")


@pytest.fixture(scope="session")
def podfleet_worker_cmd(pytestconfig: pytest.Config) -> list[str]:
    """The command each emulated worker runs; override this fixture or set the ini option."""
    raw = str(pytestconfig.getini("podfleet_worker_cmd") or "")
    return shlex.split(raw) if raw else [sys.executable, "-u", "handler.py"]


@pytest.fixture(scope="session")
def podfleet_worker_cwd(pytestconfig: pytest.Config) -> Path:
    raw = str(pytestconfig.getini("podfleet_worker_cwd") or "")
    root = Path(pytestconfig.rootpath)
    return (root / raw).resolve() if raw else root


@pytest.fixture(scope="session")
def podfleet_workers(pytestconfig: pytest.Config) -> int:
    return int(pytestconfig.getini("podfleet_workers"))


@pytest.fixture(scope="session")
def podfleet_worker_env() -> dict[str, str]:
    """Extra environment of the workers (e.g. {"PODFLEET_PIPELINES": "my_pkg.pipelines"})."""
    return {}


@pytest.fixture(scope="module")
def podfleet_endpoint(
    podfleet_worker_cmd: list[str],
    podfleet_worker_cwd: Path,
    podfleet_workers: int,
    podfleet_worker_env: dict[str, str],
) -> Iterator[WorkerEndpoint]:
    """An emulated endpoint whose workers run your worker command (one per test module)."""
    with endpoint(
        podfleet_worker_cmd,
        cwd=podfleet_worker_cwd,
        workers=podfleet_workers,
        env=podfleet_worker_env,
    ) as ep:
        yield ep


@pytest.fixture(scope="session")
def podfleet_run_job() -> Iterator[Callable[..., Any]]:
    """`podfleet_run_job(input)` -> output, in this process, on one event loop for the session
    (so warm resources such as a browser or model stay usable across tests)."""
    with asyncio.Runner() as runner:
        yield lambda job_input, **kw: run_job(job_input, runner=runner, **kw)


try:  # the in-process endpoint is async: offered when pytest-asyncio is installed
    import pytest_asyncio
except ImportError:  # pragma: no cover - depends on the environment
    pass
else:

    @pytest_asyncio.fixture
    async def podfleet_inprocess() -> AsyncIterator[InProcessEndpoint]:
        """The emulator's queue with two in-process workers running podfleet's handler."""
        async with inprocess_endpoint(workers=2) as ep:
            yield ep
