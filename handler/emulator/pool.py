"""The worker pool: real worker processes running `worker_cmd` through the SDK's job loop.

Each worker runs in its own session (process group), so its heartbeat child process dies with it.
A worker that exits is restarted after a backoff that doubles while it keeps crashing; its
in-flight jobs are re-queued or failed by the state (`worker_exited`). Workers' output is read
line by line and written as one bounded line per event, prefixed with the worker's id
(`logfmt`). With `workers_min < workers` the pool scales (`scaling.Scaler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import IO

from loguru import logger
from podfleet.emulator.logfmt import event_line, format_worker_line
from podfleet.emulator.scaling import Scaler
from podfleet.emulator.state import EndpointState

__all__ = ["WorkerPool", "worker_environment"]

_READ_CHUNK = 64 * 1024


def worker_environment(
    state: EndpointState,
    base_url: str,
    worker_id: str,
    gen: int,
    home: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one worker process: RunPod's worker variables pointing at us."""
    cfg = state.config
    env: dict[str, str] = {"PATH": os.defpath}
    if cfg.inherit_env:
        # Launching a child process: pass the shell through, minus any RunPod wiring of our own.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env.setdefault("LOG_FORMAT", "text")  # podfleet's workers: text lines, not JSON, locally
    url = f"{base_url}/{cfg.endpoint_id}"
    query = f"?gpu=emulated&gen={gen}"
    env.update(
        {
            "RUNPOD_WEBHOOK_GET_JOB": f"{url}/job-take/$ID{query}",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{url}/job-done/$RUNPOD_POD_ID/$ID{query}",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{url}/job-stream/$RUNPOD_POD_ID/$ID{query}",
            "RUNPOD_WEBHOOK_PING": f"{url}/ping/$RUNPOD_POD_ID{query}",
            "RUNPOD_POD_ID": worker_id,
            "RUNPOD_POD_HOSTNAME": f"emulator-{worker_id}",
            "RUNPOD_AI_API_KEY": state.worker_key,
            "RUNPOD_PING_INTERVAL": str(cfg.ping_interval_ms),
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
            "RUNPOD_ENDPOINT_BASE_URL": base_url,
            "RUNPOD_ENDPOINT_ID": cfg.endpoint_id,
            "RUNPOD_API_KEY": cfg.api_key or "emulator-no-key",
            "RUNPOD_LOG_LEVEL": "INFO",
            "HOME": str(home),  # no developer ~/.runpod/config.toml (it would override the key)
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(cfg.worker_env)
    env.update(extra or {})
    return env


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class WorkerPool:
    def __init__(self, state: EndpointState, base_url: str, home: Path) -> None:
        self.state = state
        self.base_url = base_url
        self.home = home
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = False
        self._stopped = asyncio.Event()
        self._expected_exit: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._log: IO[str] | None = None
        self._rollout: asyncio.Task[None] | None = None
        self.scaler = Scaler(self) if state.config.scaling else None
        self._extra_env: dict[str, dict[str, str]] = {}  # workers added later (add_workers)
        self._next_slot = state.config.workers
        state.on_lost = self.kill_lost
        state.on_refresh = self.refresh
        if state.config.log_events:
            state.on_log = self.emit

    def emit(self, line: str) -> None:
        """One formatted line to the log file, else our stderr."""
        out = self._log or sys.stderr
        try:
            out.write(line + "\n")
            out.flush()
        except (OSError, ValueError):  # a closed terminal or file: logging is best effort
            pass

    async def start(self) -> None:
        cfg = self.state.config
        if cfg.worker_log_path is not None:
            self._log = open(cfg.worker_log_path, "a", encoding="utf-8")  # noqa: SIM115
        for slot in range(cfg.workers):
            wid = f"worker-{slot}"
            self._tasks.append(asyncio.create_task(self._supervise(wid, slot), name=wid))
        if self.scaler is not None:
            self._tasks.append(asyncio.create_task(self.scaler.run(), name="scaler"))

    def add_workers(self, n: int, *, env: dict[str, str] | None = None) -> list[str]:
        """Start n more always-on workers (outside the scaler), with `env` on top of the
        configured worker environment. On the emulator's loop."""
        if n < 0:
            raise ValueError(f"n: expected a count >= 0, got {n}")
        if self.stopping:
            raise RuntimeError("the emulator is shutting down")
        ids = []
        for _ in range(n):
            slot = self._next_slot
            self._next_slot += 1
            wid = f"worker-{slot}"
            self._extra_env[wid] = dict(env or {})
            task = asyncio.create_task(self._supervise(wid, slot, scaled=False), name=wid)
            self._tasks.append(task)
            ids.append(wid)
        return ids

    async def _pump(self, wid: str, stream: asyncio.StreamReader) -> None:
        """Read a worker's output; write each line formatted and bounded."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the reader's limit: take a chunk of it
                raw = await stream.read(_READ_CHUNK)
            if not raw:
                return
            self.emit(format_worker_line(wid, raw.decode("utf-8", errors="replace")))

    async def _supervise(self, wid: str, slot: int, *, scaled: bool = True) -> None:
        cfg = self.state.config
        scaler = self.scaler if scaled else None
        extra = self._extra_env.get(wid)
        while not self.stopping:
            if scaler is not None and not await scaler.wanted(slot):
                return  # shutting down while scaled to zero
            w = self.state.register_worker(wid, slot, supervised=True)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *cfg.worker_cmd,
                    cwd=cfg.worker_cwd,
                    env=worker_environment(self.state, self.base_url, wid, w.gen, self.home, extra),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    limit=_READ_CHUNK,
                )
            except OSError as exc:
                logger.error("cannot start worker {}: {}", wid, exc)
                self.emit(event_line(wid, "ERROR", f"cannot start: {exc}"))
                self.state.worker_exited(wid, f"failed to start: {exc}", crash=True)
            else:
                w.pid = proc.pid
                self.procs[wid] = proc
                assert proc.stdout is not None
                pump = asyncio.create_task(self._pump(wid, proc.stdout))
                if cfg.log_events:
                    self.emit(event_line(wid, "INFO", f"started (pid {proc.pid})"))
                returncode = await proc.wait()
                self._kill_group(proc.pid, signal.SIGKILL)  # the orphaned heartbeat process
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pump, 2)  # the last lines
                expected = self.stopping or wid in self._expected_exit
                self._expected_exit.discard(wid)
                reason = _describe(returncode)
                if not expected:
                    logger.warning("worker {} (pid {}) {}", wid, proc.pid, reason)
                if cfg.log_events or not expected:
                    self.emit(event_line(wid, "WARN" if not expected else "INFO", reason))
                self.state.worker_exited(wid, reason, crash=not expected)
            if self.stopping:
                return
            if scaler is not None and scaler.stopped(slot, w):
                continue  # scaled down: no restart, wait to be wanted again
            w.restarts += 1
            recent = len(w.exits)
            delay_s = 0.0 if not recent else cfg.restart_backoff_s * 2 ** (recent - 1)
            with contextlib.suppress(TimeoutError):  # the backoff, cut short by shutdown()
                await asyncio.wait_for(
                    self._stopped.wait(), min(delay_s, cfg.max_restart_backoff_s)
                )

    @staticmethod
    def _kill_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def signal_worker(self, wid: str, sig: int) -> None:
        """SIGSTOP/SIGCONT go to the whole group (heartbeat too); others to the main process."""
        proc = self.procs.get(wid)
        if proc is None or proc.returncode is not None:
            raise RuntimeError(f"worker {wid} has no running process")
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            self._kill_group(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)

    def kill_lost(self, wid: str) -> None:
        proc = self.procs.get(wid)
        if proc is not None and proc.returncode is None:
            self._kill_group(proc.pid, signal.SIGKILL)

    def refresh(self, wid: str) -> None:
        """stopPod / refresh_worker: let the worker exit cleanly, then start a fresh one."""
        proc = self.procs.get(wid)
        if proc is not None and proc.returncode is None:
            self._expected_exit.add(wid)
            self.state.drain(wid)
            os.kill(proc.pid, signal.SIGTERM)

    def roll_out(self) -> None:
        """Replace stale workers one at a time, each when idle (a rolling release)."""
        if self._rollout is None or self._rollout.done():
            self._rollout = asyncio.get_running_loop().create_task(self._roll())
            self._tasks.append(self._rollout)

    async def _roll(self) -> None:
        st = self.state
        while not self.stopping:
            stale = [w for w in st.workers.values() if w.active and w.version != st.version]
            if not stale:
                return
            idle = [w for w in stale if w.alive and not w.jobs and not w.draining]
            if idle and idle[0].id not in self._expected_exit:
                w = idle[0]
                self.emit(event_line(w.id, "INFO", f"rolling release: replaced by v{st.version}"))
                self.refresh(w.id)
                gen = w.gen
                await st.wait_until(lambda: w.gen != gen or self.stopping, 600)  # noqa: B023
                continue
            await st.changed.wait(1.0)

    def stop_worker(self, wid: str) -> bool:
        """Stop a worker cleanly (scale-down): drained, SIGTERM; False if it has no process."""
        proc = self.procs.get(wid)
        if proc is None or proc.returncode is not None:
            return False
        self._expected_exit.add(wid)
        self.state.drain(wid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        return True

    async def shutdown(self, grace_s: float) -> None:
        """SIGTERM every worker (in-flight jobs finish), SIGKILL what is left after grace_s."""
        self.stopping = True
        self._stopped.set()
        if self.scaler is not None:
            self.scaler.wake_all()
        live = [(wid, p) for wid, p in self.procs.items() if p.returncode is None]
        for wid, proc in live:
            self.state.drain(wid)
            if wid in self._expected_exit:
                continue  # already stopping (scale-down, refresh): a second SIGTERM could land
                # in its interpreter's finalization, where it kills instead of asking
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        if live:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for _, p in live], timeout=grace_s)
            for wid, proc in live:
                if proc.returncode is None:
                    logger.warning("worker {} did not stop within {}s: SIGKILL", wid, grace_s)
                    self.emit(event_line(wid, "WARN", f"did not stop within {grace_s:g}s: SIGKILL"))
                    self._kill_group(proc.pid, signal.SIGKILL)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=3)  # each records its worker's exit
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for proc in self.procs.values():
            self._kill_group(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
