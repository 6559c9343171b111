"""The SDK's job loop without its post-job pause (`WORKER_LOOP=prompt`).

runpod 1.12.0's `JobScaler.get_jobs` sleeps 1 s at a time while every slot is busy, so a worker
asks for its next job up to 1 s after finishing one, and `run_jobs` looks at its queue every
0.1 s. `PromptJobScaler` overrides exactly those two waits: the take loop wakes when a job ends
(a slot frees) and the run loop wakes when a job is queued. Everything else is the SDK's own
code, unchanged: the job-take request (`get_job`), the handler call and the job-done/stream posts
(`handle_job`), the stop channel, progress updates, the heartbeat process, concurrency
(`concurrency_modifier`), SIGTERM handling and its drain.

One behaviour differs, on purpose: a job whose take was in flight when SIGTERM arrived is run
(and its result posted) before the worker exits; the stock loop drops it, and the queue only
re-runs it once it notices the worker is gone.

`worker.run_worker` looks `rp_scale.JobScaler` up when it runs, so `install_worker_loop` only
assigns the subclass there. The overridden loops copy the SDK's; they were checked against one
SDK version (`VERIFIED_SDK_VERSIONS`), and on any other the stock loop runs with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from loguru import logger

__all__ = [
    "VERIFIED_SDK_VERSIONS",
    "WorkerLoop",
    "install_worker_loop",
    "prompt_job_scaler",
]

WorkerLoop = Literal["stock", "prompt"]

# The SDK versions whose rp_scale.JobScaler.get_jobs/run_jobs the overrides below were copied
# from and tested against (tests/integration/worker_loop). Anything else: the stock loop.
VERIFIED_SDK_VERSIONS = frozenset({"1.12.0"})

# Upper bound of every wait, as in the stock loop: a wake-up that is somehow missed costs at
# most this, never a stall. The run loop keeps the stock 0.1 s tick (it also lets a SIGTERM
# that arrives while the loop sleeps be seen promptly).
_TAKE_WAIT_CAP_S = 1.0
_RUN_TICK_S = 0.1

_stock_scaler: type | None = None  # the SDK's own JobScaler, saved by the first install
_prompt_scaler: type | None = None


def prompt_job_scaler() -> type:
    """The `JobScaler` subclass (built once, on the SDK's class; importing it imports runpod)."""
    global _prompt_scaler, _stock_scaler
    if _prompt_scaler is not None:
        return _prompt_scaler
    from runpod.http_client import TooManyRequests
    from runpod.serverless.modules import rp_scale

    _stock_scaler = _stock_scaler or rp_scale.JobScaler
    base = _stock_scaler
    log = rp_scale.log

    class PromptJobScaler(base):  # type: ignore[misc, valid-type]
        """`JobScaler` whose take loop wakes when a slot frees, and run loop when a job queues."""

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            self._slot_freed = asyncio.Event()
            self._job_queued = asyncio.Event()
            self._taking = False  # a job-take request is in flight
            self._loop: asyncio.AbstractEventLoop | None = None

        async def run(self) -> None:
            self._loop = asyncio.get_running_loop()
            await super().run()

        def kill_worker(self) -> None:
            super().kill_worker()
            # Called from the SIGTERM handler: wake the waits through the loop, thread-safely.
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._wake_all)

        def _wake_all(self) -> None:
            self._slot_freed.set()
            self._job_queued.set()

        async def handle_job(self, session: Any, job: dict) -> None:
            try:
                await super().handle_job(session, job)
            finally:  # the SDK's finally has just removed the job from JobsProgress
                self._slot_freed.set()

        async def get_jobs(self, session: Any) -> None:
            """rp_scale.JobScaler.get_jobs (1.12.0), but a full worker waits for a free slot
            instead of sleeping 1 s."""
            while self.is_alive():
                await self.set_scale()

                jobs_needed = self.current_concurrency - self.current_occupancy()
                if jobs_needed <= 0:
                    self._slot_freed.clear()
                    if self.current_concurrency - self.current_occupancy() <= 0:
                        await _wait_event(self._slot_freed, _TAKE_WAIT_CAP_S)
                    continue

                try:
                    self._taking = True
                    try:
                        acquired_jobs = await asyncio.wait_for(
                            self.jobs_fetcher(session, jobs_needed),
                            timeout=self.jobs_fetcher_timeout,
                        )
                    finally:
                        self._taking = False

                    if not acquired_jobs:
                        continue

                    for job in acquired_jobs:
                        await self.jobs_queue.put(job)
                        self.job_progress.add(job)
                        log.debug("Job Queued", job["id"])
                    self._job_queued.set()

                    log.info(f"Jobs in queue: {self.jobs_queue.qsize()}")

                except TooManyRequests:
                    await asyncio.sleep(5)  # the SDK's debounce
                except asyncio.CancelledError:
                    raise
                except TimeoutError:
                    log.debug("JobScaler.get_jobs | Job acquisition timed out. Retrying.")
                except TypeError as error:
                    log.debug(f"JobScaler.get_jobs | Unexpected error: {error}.")
                except Exception as error:
                    log.error(
                        f"Failed to get job. | Error Type: {type(error).__name__} "
                        f"| Error Message: {error}"
                    )
                finally:
                    await asyncio.sleep(0)

        async def run_jobs(self, session: Any) -> None:
            """rp_scale.JobScaler.run_jobs (1.12.0), woken by a queued job as well as by a
            finished one; it also keeps going while a take is in flight at shutdown, so a job
            that take returns still runs."""
            tasks: set[asyncio.Task] = set()
            last_task_count = 0
            while self.is_alive() or not self.jobs_queue.empty() or self._taking:
                self._job_queued.clear()
                while len(tasks) < self.current_concurrency and not self.jobs_queue.empty():
                    job = await self.jobs_queue.get()
                    task = asyncio.create_task(self.handle_job(session, job))
                    tasks.add(task)
                    self.jobs_tasks[job["id"]] = task

                if tasks and len(tasks) != last_task_count:
                    log.info(f"Jobs in progress: {len(tasks)}")
                last_task_count = len(tasks)

                queued = asyncio.ensure_future(self._job_queued.wait())
                try:
                    done, _ = await asyncio.wait(
                        {*tasks, queued}, return_when=asyncio.FIRST_COMPLETED, timeout=_RUN_TICK_S
                    )
                finally:
                    queued.cancel()
                tasks.difference_update(done)

            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                    log.error(f"JobScaler.run_jobs | Task failed during shutdown drain: {result}")

    _prompt_scaler = PromptJobScaler
    return PromptJobScaler


async def _wait_event(event: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)


def install_worker_loop(loop: WorkerLoop) -> WorkerLoop:
    """Make the SDK's `run_worker` use `loop`; returns the loop that will actually run.

    Call before `runpod.serverless.start`. `prompt` on an SDK version it was not verified on
    logs a warning and keeps the stock loop.
    """
    global _stock_scaler
    from runpod.serverless.modules import rp_scale
    from runpod.version import __version__ as sdk_version

    if _stock_scaler is None:
        _stock_scaler = rp_scale.JobScaler
    if loop == "stock":
        rp_scale.JobScaler = _stock_scaler
        return "stock"
    if loop != "prompt":
        raise ValueError(f"WORKER_LOOP: expected 'stock' or 'prompt', got {loop!r}")
    if sdk_version not in VERIFIED_SDK_VERSIONS:
        logger.warning(
            "WORKER_LOOP=prompt was verified on runpod {} only; this is runpod {}: "
            "running the SDK's stock loop (up to 1 s between jobs)",
            ", ".join(sorted(VERIFIED_SDK_VERSIONS)),
            sdk_version,
        )
        rp_scale.JobScaler = _stock_scaler
        return "stock"
    rp_scale.JobScaler = prompt_job_scaler()
    logger.info("worker loop: prompt (runpod {})", sdk_version)
    return "prompt"
