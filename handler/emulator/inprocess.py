"""In-process mode: the same app and queue, with workers that call a handler function directly.

For fast tests: no sockets, no processes. Talk to it with
`httpx.AsyncClient(transport=emu.transport, base_url=emu.url)`. Workers follow the SDK's rules:
one job at a time, results shaped as the SDK posts them, a job-stop cancels the handler's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import signal
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from podfleet.emulator.app import create_app
from podfleet.emulator.config import EmulatorConfig, FaultConfig
from podfleet.emulator.state import EndpointState
from podfleet.emulator.workers import WorkerInfo

__all__ = ["InProcessEmulator", "run_in_process", "sdk_result"]

HandlerFn = Callable[[dict[str, Any]], Any]


def sdk_result(output: Any) -> dict[str, Any]:
    """The job-done body the SDK (1.12) posts for a handler's return value."""
    if isinstance(output, dict):
        output = dict(output)
        error = output.pop("error", None)
        refresh = output.pop("refresh_worker", None)
        body: dict[str, Any] = {"output": output} if output else {}
        if error:
            body["error"] = error
        if refresh:
            body["stopPod"] = True
        return body
    return {"output": output}


def _exception_body(exc: BaseException, worker_id: str) -> dict[str, Any]:
    info = {
        "error_type": str(type(exc)),
        "error_message": str(exc),
        "error_traceback": "".join(traceback.format_exception(exc)),
        "hostname": "in-process",
        "worker_id": worker_id,
    }
    return {"error": json.dumps(info)}


class _Worker:
    def __init__(
        self, emu: InProcessEmulator, wid: str, slot: int, handler: HandlerFn | None = None
    ) -> None:
        self.emu, self.wid, self.slot = emu, wid, slot
        self.handler = handler
        self.task: asyncio.Task[None] | None = None
        self.job_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        w = self.emu.state.register_worker(self.wid, self.slot, supervised=False)
        self.task = asyncio.create_task(self._loop(w), name=f"in-process {self.wid}")

    async def _loop(self, w: WorkerInfo) -> None:
        state, cfg = self.emu.state, self.emu.state.config
        while not state.closing and not w.draining:
            for job in await state.take(w, 1, cfg.take_long_poll_s):
                self.job_task = asyncio.create_task(self._run(w, job))
                stops = asyncio.create_task(self._watch_stop(w, job["id"]))
                try:
                    await asyncio.wait([self.job_task, stops], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stops.cancel()
                    if not self.job_task.done():
                        self.job_task.cancel()  # stopped: the SDK posts nothing then
                    await asyncio.gather(self.job_task, return_exceptions=True)
                    self.job_task = None
                    if w.stopping.pop(job["id"], None) is not None:
                        state.changed.notify()

    async def _watch_stop(self, w: WorkerInfo, job_id: str) -> None:
        while job_id not in await self.emu.state.stop_signals(w, 3600):
            if self.emu.state.closing:
                await asyncio.Event().wait()

    async def _run(self, w: WorkerInfo, job: dict[str, Any]) -> None:
        state, fn = self.emu.state, self.handler or self.emu.handler
        try:
            if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
                chunks = []
                gen = fn(job)
                if inspect.isasyncgen(gen):
                    async for chunk in gen:
                        chunks.append(chunk)
                        state.post_stream(w, job["id"], {"output": chunk})
                else:
                    for chunk in gen:
                        chunks.append(chunk)
                        state.post_stream(w, job["id"], {"output": chunk})
                body = {"output": chunks}
            else:
                result = fn(job)
                if inspect.isawaitable(result):
                    result = await result
                body = sdk_result(result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            body = _exception_body(exc, self.wid)
        state.post_done(w, job["id"], json.dumps(body).encode())

    def kill(self) -> None:
        for task in (self.job_task, self.task):
            if task is not None:
                task.cancel()


class InProcessEmulator:
    """The same surface as `Emulator`; `wait_*` are coroutines here (one event loop)."""

    def __init__(self, state: EndpointState, handler: HandlerFn) -> None:
        self.state = state
        self.handler = handler
        self.app = create_app(state)
        self.transport = httpx.ASGITransport(app=self.app)
        self.base_url = "http://emulator.invalid/v2"
        self.endpoint_id = state.config.endpoint_id
        self.api_key = state.config.api_key
        self._workers: dict[str, _Worker] = {}
        self._restarts: set[asyncio.Task[None]] = set()

    @property
    def faults(self) -> FaultConfig:
        return self.state.faults

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.endpoint_id}"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client for this endpoint (API key header set when there is one)."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(
            transport=self.transport, base_url=self.url, headers=headers, **kwargs
        )

    async def wait_idle(self, timeout_s: float) -> None:
        await self.state.wait_idle(timeout_s)

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        await self.state.wait_until(predicate, timeout_s)

    async def wait_job(
        self,
        job_id: str,
        predicate: Callable[[dict[str, Any] | None], bool] | None = None,
        timeout_s: float = 60,
    ) -> dict[str, Any] | None:
        def check() -> bool:
            job = self.state.jobs.get(job_id)
            if predicate is None:
                return job is None or job.status.is_final()
            return predicate(job.info() if job else None)

        await self.state.wait_until(check, timeout_s)
        job = self.state.jobs.get(job_id)
        return job.info() if job else None

    async def wait_health(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> None:
        await self.state.wait_until(lambda: predicate(self.state.health()), timeout_s)

    async def wait_workers(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float
    ) -> None:
        await self.state.wait_until(lambda: predicate(self.state.workers_info()), timeout_s)

    def health(self) -> dict[str, Any]:
        return self.state.health()

    def request_stats(
        self, *, since: float | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """Requests per operation, as `Emulator.request_stats` (in-process workers call the
        state directly, so only client requests through the app are counted here)."""
        return self.state.requests.stats(since=since, until=until)

    def add_workers(self, n: int, *, handler: HandlerFn | None = None) -> list[str]:
        """Start `n` more in-process workers now (calling `handler`, default the emulator's)."""
        if n < 0:
            raise ValueError(f"n: expected a count >= 0, got {n}")
        ids = []
        for _ in range(n):
            slot = len(self._workers)
            worker = _Worker(self, f"worker-{slot}", slot, handler)
            self._workers[worker.wid] = worker
            worker.start()
            ids.append(worker.wid)
        return ids

    def events(self) -> list[dict[str, Any]]:
        return [{"t_s": t, "kind": k, "worker": w, "job": j} for t, k, w, j in self.state.events]

    def job(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.state.jobs:
            raise KeyError(f"job {job_id!r} not found (unknown or expired)")
        return self.state.jobs[job_id].info()

    def jobs(self) -> list[dict[str, Any]]:
        return [j.info() for j in self.state.jobs.values()]

    def workers(self) -> list[dict[str, Any]]:
        return self.state.workers_info()

    def kill_worker(
        self, worker_id: str | None = None, *, busy: bool = True, sig: int = signal.SIGKILL
    ) -> str:
        """Kill an in-process worker mid-job (its task is cancelled; no result is posted)."""
        if worker_id is None:
            live = [w for w in self.state.workers.values() if w.alive and (w.jobs or not busy)]
            if not live:
                raise RuntimeError("no busy worker to kill" if busy else "no live worker")
            worker_id = live[0].id
        self._workers[worker_id].kill()
        self.state.worker_exited(worker_id, f"killed ({signal.Signals(sig).name})", crash=True)
        task = asyncio.create_task(self._restart(worker_id))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)
        return worker_id

    async def _restart(self, worker_id: str) -> None:
        w = self.state.workers[worker_id]
        cfg = self.state.config
        await asyncio.sleep(min(cfg.restart_backoff_s, cfg.max_restart_backoff_s))
        if not self.state.closing:
            w.restarts += 1
            self._workers[worker_id].start()

    def client_env(self) -> dict[str, str]:
        return {
            "RUNPOD_ENDPOINT_BASE_URL": self.base_url,
            "RUNPOD_ENDPOINT_ID": self.endpoint_id,
            "RUNPOD_API_KEY": self.api_key or "emulator-no-key",
        }

    def _start(self) -> None:
        self.state.start()
        for slot in range(self.state.config.workers):
            worker = _Worker(self, f"worker-{slot}", slot)
            self._workers[worker.wid] = worker
            worker.start()

    async def _stop(self) -> None:
        self.state.close()
        for task in self._restarts:
            task.cancel()
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for worker in self._workers.values():
            worker.kill()
        await asyncio.gather(*tasks, *self._restarts, return_exceptions=True)


@contextlib.asynccontextmanager
async def run_in_process(
    config: EmulatorConfig, *, handler: HandlerFn
) -> AsyncIterator[InProcessEmulator]:
    """`async with run_in_process(cfg, handler=fn) as emu:` — workers call fn(job) directly."""
    emu = InProcessEmulator(EndpointState(config), handler)
    emu._start()
    try:
        yield emu
    finally:
        await emu._stop()
