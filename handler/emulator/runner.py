"""Out-of-process mode: uvicorn on 127.0.0.1 in a background thread plus real worker processes.

`run_emulator(config)` is for tests, demos and benchmarks (a context manager); `serve_forever`
is what `podfleet emulate` calls. `Emulator` is the handle both give: it hops onto the server's
event loop for every read, so it is safe to use from the caller's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

import uvicorn
from podfleet.emulator.app import create_app
from podfleet.emulator.config import EmulatorConfig, FaultConfig
from podfleet.emulator.pool import WorkerPool
from podfleet.emulator.state import EndpointState

__all__ = ["Emulator", "run_emulator", "serve_forever"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

T = TypeVar("T")


class Emulator:
    """A running emulator (out-of-process workers). Thread-safe handle."""

    def __init__(self, state: EndpointState, pool: WorkerPool, base_url: str) -> None:
        assert state.loop is not None
        self._state = state
        self._pool = pool
        self._loop = state.loop
        self.base_url = base_url
        self.endpoint_id = state.config.endpoint_id
        self.api_key = state.config.api_key
        self._start_faults = FaultConfig.model_validate(state.faults.model_dump())

    @property
    def faults(self) -> FaultConfig:
        return self._state.faults

    def reset_faults(self) -> None:
        """Every fault back to what the emulator started with (a shared fleet, between tests)."""
        self.faults.restore(self._start_faults)

    @property
    def url(self) -> str:
        """The endpoint URL: f"{base_url}/{endpoint_id}"."""
        return f"{self.base_url}/{self.endpoint_id}"

    @property
    def dashboard_url(self) -> str:
        """The live dashboard (a page on the same server)."""
        return self.base_url.removesuffix("/v2") + "/dashboard"

    def workers_listing(self) -> dict[str, Any]:
        """RunPod's REST v2 worker listing, as GET /v2/serverless/{id}/workers serves it."""
        from podfleet.emulator.observe import workers_listing

        return self._call(lambda: workers_listing(self._state))

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard shows."""
        from podfleet.emulator.observe import snapshot

        return self._call(lambda: snapshot(self._state))

    def release(self, *, rolling: bool = False) -> int:
        """Publish a new endpoint release: running workers become stale (`isStale`).
        rolling=True replaces them as RunPod's rolling release does: one at a time, each when
        it has no job (drained, SIGTERM, restarted on the new release)."""

        def publish() -> int:
            version = self._state.release()
            if rolling:
                self._pool.roll_out()
            return version

        return self._call(publish)

    def request_stats(
        self, *, since: float | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """Requests per operation (run, status, stream, job-take, job-done, ping, ...) over
        [since, until] (time.time() seconds; default the whole run): total, mean_per_s,
        peak_per_s, peak_per_10s, limit_per_10s (RunPod's, where published); "all" sums them.
        """
        return self._call(lambda: self._state.requests.stats(since=since, until=until))

    def add_workers(self, n: int, *, env: dict[str, str] | None = None) -> list[str]:
        """Start `n` more worker processes now (always on, not scaled), with `env` on top of
        the configured worker environment; returns their ids. Wait for them with
        `wait_ready(count=...)`."""
        return self._call(lambda: self._pool.add_workers(n, env=env))

    def billing(self) -> dict[str, Any]:
        """Billed worker-seconds so far (as in /health's `billing`)."""
        return self._call(self._state.billing)

    def _call(self, fn: Callable[[], T], timeout_s: float = 10) -> T:
        if not self._loop.is_running():  # after exit: read the final state directly
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    def _wait(self, coro: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s + 10)

    def wait_idle(self, timeout_s: float) -> None:
        """Block until nothing is queued, running or being delivered (webhooks); TimeoutError."""
        self._wait(self._state.wait_idle(timeout_s), timeout_s)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Block until predicate() (evaluated on the emulator's loop at every change) holds."""
        self._wait(self._state.wait_until(predicate, timeout_s), timeout_s)

    def wait_workers(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float
    ) -> None:
        """Block until predicate(workers()) holds."""
        self.wait_until(lambda: predicate(self._state.workers_info()), timeout_s)

    def wait_health(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float) -> None:
        """Block until predicate(the /health dict) holds."""
        self.wait_until(lambda: predicate(self._state.health()), timeout_s)

    def wait_job(
        self,
        job_id: str,
        predicate: Callable[[dict[str, Any] | None], bool] | None = None,
        timeout_s: float = 60,
    ) -> dict[str, Any] | None:
        """Wait until the job is final (or predicate(job info, None once deleted) holds)."""
        state = self._state

        def check() -> bool:
            job = state.jobs.get(job_id)
            if predicate is None:
                return job is None or job.status.is_final()
            return predicate(job.info() if job else None)

        self.wait_until(check, timeout_s)
        return self._call(lambda: state.jobs[job_id].info() if job_id in state.jobs else None)

    def wait_ready(
        self, timeout_s: float = 60, count: int | None = None, *, polling: bool = False
    ) -> None:
        """Wait until `count` workers (default: all not throttled) are idle or running.

        polling=True: idle and holding a job-take open, so a new job is dispatched at once
        (not during the SDK's pause after a job)."""
        state = self._state

        def ready() -> bool:
            workers = [w for w in state.workers.values() if w.active]
            states = [state.worker_state(w) for w in workers]
            want = count if count is not None else len(states) - states.count("throttled")
            if polling:
                pairs = zip(states, workers, strict=True)
                return sum(s == "idle" and w.polling > 0 for s, w in pairs) >= want
            return sum(s in ("idle", "running") for s in states) >= want

        try:
            self.wait_until(ready, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"workers not ready in {timeout_s}s: {self.workers()}") from None

    def health(self) -> dict[str, Any]:
        return self._call(self._state.health)

    def events(self) -> list[dict[str, Any]]:
        """The dispatch timeline: {t_s (monotonic), kind (take/assign/done), worker, job}."""
        rows = self._call(lambda: list(self._state.events))
        return [{"t_s": t, "kind": k, "worker": w, "job": j} for t, k, w, j in rows]

    def job(self, job_id: str) -> dict[str, Any]:
        def info() -> dict[str, Any]:
            if job_id not in self._state.jobs:
                raise KeyError(f"job {job_id!r} not found (unknown or expired)")
            return self._state.jobs[job_id].info()

        return self._call(info)

    def jobs(self) -> list[dict[str, Any]]:
        return self._call(lambda: [j.info() for j in self._state.jobs.values()])

    def workers(self) -> list[dict[str, Any]]:
        return self._call(self._state.workers_info)

    def kill_worker(
        self, worker_id: str | None = None, *, busy: bool = True, sig: int = signal.SIGKILL
    ) -> str:
        """Signal a worker (default: SIGKILL a busy one). SIGSTOP freezes it and its heartbeat."""

        def pick() -> str:
            if worker_id is not None:
                return worker_id
            for w in self._state.workers.values():
                if w.alive and (bool(w.jobs) or not busy):
                    return w.id
            raise RuntimeError("no busy worker to kill" if busy else "no live worker")

        wid = self._call(pick)
        self._call(lambda: self._pool.signal_worker(wid, sig))
        return wid

    def client_env(self) -> dict[str, str]:
        """What a client needs: RUNPOD_ENDPOINT_BASE_URL, RUNPOD_ENDPOINT_ID, RUNPOD_API_KEY."""
        return {
            "RUNPOD_ENDPOINT_BASE_URL": self.base_url,
            "RUNPOD_ENDPOINT_ID": self.endpoint_id,
            "RUNPOD_API_KEY": self.api_key or "emulator-no-key",
        }


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig, *, port: int | None = None, start_timeout_s: float = 30
) -> Iterator[Emulator]:
    """Serve the emulator on 127.0.0.1 (a free port unless given) with its worker processes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port or 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2"
    home = Path(tempfile.mkdtemp(prefix="podfleet-emulator-home-"))
    state = EndpointState(config)
    pool = WorkerPool(state, base_url, home)
    started = threading.Event()

    async def on_startup() -> None:
        await pool.start()
        started.set()

    app = create_app(state, on_startup=on_startup)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            timeout_keep_alive=120,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="podfleet-emulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not started.wait(0.05):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator failed to start (see the log above)")
        yield Emulator(state, pool, base_url)
    finally:
        loop = state.loop
        try:
            if loop is not None and thread.is_alive():
                stop = pool.shutdown(config.shutdown_grace_s)
                asyncio.run_coroutine_threadsafe(stop, loop).result(config.shutdown_grace_s + 30)
                loop.call_soon_threadsafe(state.close)
        finally:
            server.should_exit = True
            thread.join(15)
            sock.close()
            shutil.rmtree(home, ignore_errors=True)


def _say(line: str, out: TextIO | None = None) -> None:
    """One line in one write: worker lines go to the same terminal (or pipe) from other
    threads, and `print` writes the text and its newline separately when unbuffered."""
    out = out or sys.stdout
    out.write(line + "\n")
    out.flush()


def serve_forever(
    config: EmulatorConfig, port: int | None = None, *, kill_every_s: float | None = None
) -> None:
    """Foreground emulator for `podfleet emulate`: prints the URLs and the client environment
    (never the API key); Ctrl-C or SIGTERM stops it. `kill_every_s`: SIGKILL a busy worker
    that often (the "kill a worker" fault)."""
    from loguru import logger

    logger.remove()  # the emulator's own warnings in the same one-line shape as the events
    logger.add(sys.stderr, level="INFO", format="{time:HH:mm:ss} emulator  {level: <5} {message}")
    stop = threading.Event()
    # Ctrl-C and SIGTERM both stop it. SIGINT is handled here rather than left to Python's
    # KeyboardInterrupt: a process started with SIGINT ignored (a background job of a
    # non-interactive shell, `nohup … &`) never gets a KeyboardInterrupt, and the emulator then
    # ignored the Ctrl-C its banner asks for (main thread only, both).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        with run_emulator(config, port=port) as emu:
            n = config.workers
            scale = f"{config.workers_min}-{n} workers" if config.scaling else f"{n} workers"
            _say(f"RunPod emulator: {emu.url}  ({scale}: {' '.join(config.worker_cmd)})")
            _say(f"Dashboard: {emu.dashboard_url}")
            _say("Client environment:")
            env = emu.client_env()
            for name, value in env.items():
                if name == "RUNPOD_API_KEY" and config.api_key:
                    _say(f"  # {name}: the key given to --api-key (not shown)")
                else:
                    _say(f"  export {name}={value}")
            _say("Ctrl-C to stop (in-flight jobs finish first).")
            try:
                while not stop.wait(kill_every_s or 3600):
                    if kill_every_s:
                        _kill_one(emu)
            except KeyboardInterrupt:
                pass
            _say("stopping: workers get SIGTERM, in-flight jobs finish...", sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _kill_one(emu: Emulator) -> None:
    try:
        wid = emu.kill_worker(busy=True)
    except RuntimeError:
        return  # no busy worker right now
    _say(f"fault: SIGKILL {wid}", sys.stderr)
