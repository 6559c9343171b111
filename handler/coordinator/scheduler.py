"""Dynamic chunk scheduling: at most `workers` siblings in flight, the next chunk submitted as
one finishes, the coordinator running chunks itself meanwhile, queued chunks taken back.

One asyncio task runs the loop below (submit, poll, decide); a second one, the local runner,
processes chunks in this process. Both take chunks from the same `pending` queue. The loop ends
when every chunk has an outcome or at the deadline; on the way out (deadline, error or
cancellation of the coordinator job) every sibling still in flight is cancelled through the API.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loguru import logger
from podfleet.coordinator.chunks import Chunk
from podfleet.coordinator.merge import Merger
from podfleet.coordinator.outcomes import ChunkOutcomes
from podfleet.coordinator.resume import LedgerWriter
from podfleet.coordinator.siblings import Sibling, SiblingPool
from podfleet.coordinator.stats import FanoutStats
from podfleet.coordinator.tally import Tally
from podfleet.output import JobOutput
from podfleet.pipeline.deadline import Deadline
from podfleet.pipeline.errors import JobFailure

__all__ = ["LocalRunner", "Scheduler", "SchedulerConfig"]

LocalRunner = Callable[[Chunk, Deadline], Awaitable[JobOutput]]  # (chunk, job deadline) → result
STATUS_BUDGET_PER_S = 100.0  # status polls per second we allow ourselves: half of RunPod's 200
# Failed status rounds in a row after which, submissions having stopped, the siblings still in
# flight are given up for lost and their chunks run here.
STATUS_FAILS_TO_GIVE_UP = 3


@dataclass(kw_only=True)
class SchedulerConfig:
    workers: int
    max_retries: int
    pickup_timeout_s: float
    poll_interval_s: float
    deadline: Deadline  # the job's
    want_records: bool
    results_inline: bool = True  # False: siblings' results stay in the ledger (items_from)
    run_local: bool = True
    retry_base_s: float = 0.5
    retry_max_s: float = 10.0


class Scheduler(ChunkOutcomes):
    def __init__(
        self,
        chunks: list[Chunk],
        pool: SiblingPool,
        merger: Merger | Tally,
        stats: FanoutStats,
        config: SchedulerConfig,
        run_local: LocalRunner,
        on_progress: Callable[[], None] = lambda: None,
        *,
        ledger: LedgerWriter | None = None,
        on_accept: Callable[[Chunk, JobOutput], None] = lambda chunk, result: None,
    ):
        self.chunks = chunks
        self.pool = pool
        self.merger = merger
        self.stats = stats
        self.cfg = config
        self.run_local = run_local
        self.on_progress = on_progress
        self.on_accept = on_accept
        self.ledger = ledger or LedgerWriter()
        # A resumed fan-out: chunks merged from the ledger or adopted siblings are not pending.
        busy = merger.finished | {s.chunk.index for s in pool.in_flight.values()}
        self.pending: deque[Chunk] = deque(c for c in chunks if c.index not in busy)
        self.take_back: deque[Chunk] = deque()  # chunks cancelled on the queue: run them here
        self.cap = config.workers  # siblings allowed in flight; lowered while none get picked up
        self._submissions_stopped = False
        # One round of /run at a time, in its own task, so a slow or failing API (each /run
        # retried by the client for up to SUBMIT_TIMEOUT_S) never holds the loop: polls go on,
        # the job ends when its chunks are done, and an idle local runner takes the chunks of
        # a round that is slow to answer (a sibling created for one of them is then cancelled).
        self._submit_task: asyncio.Task[None] | None = None
        self._submitting: dict[int, Chunk] = {}  # chunk index → chunk, while its /run is out
        self._submit_started_s = 0.0
        self._stolen: set[int] = set()  # chunks of the round in flight the local runner took
        self._running_here: Chunk | None = None  # the local runner's chunk
        self._fetch: list[Chunk] = []  # chunks a skipped sibling found done: outcome to read
        self._changed = asyncio.Event()
        self._rng = random.Random()

    # --- state ----------------------------------------------------------------------------
    def finished(self) -> bool:
        return len(self.merger.finished) == len(self.chunks)

    def unfinished_chunks(self) -> list[Chunk]:
        return [c for c in self.chunks if c.index not in self.merger.finished]

    def _poke(self) -> None:
        self._changed.set()

    def _next_pending(self, now_s: float, *, local: bool = False) -> Chunk | None:
        for chunk in self.pending:
            if chunk.not_before_s <= now_s and not (local and chunk.siblings_only):
                self.pending.remove(chunk)
                return chunk
        return None

    # --- siblings -------------------------------------------------------------------------
    def _poll_interval_s(self) -> float:
        return max(self.cfg.poll_interval_s, len(self.pool) / STATUS_BUDGET_PER_S)

    async def _fill(self) -> None:
        task = self._submit_task
        if task is not None:
            if not task.done():
                return
            self._submit_task = None
            task.result()  # surfaces a bug in the round
        now = time.monotonic()
        breaker = self.pool.breaker
        if not breaker.allows(now):
            return
        limit = min(self.cap, len(self.pool) + breaker.batch_limit(self.cap))
        batch: list[Chunk] = []
        while len(self.pool) + len(batch) < limit:
            chunk = self._next_pending(now)
            if chunk is None:
                break
            batch.append(chunk)
        if batch:
            self._submitting = {c.index: c for c in batch}
            self._submit_started_s = now
            self._submit_task = asyncio.create_task(self._submit_round(batch))

    async def _submit_round(self, batch: list[Chunk]) -> None:
        try:
            for chunk in batch:
                chunk.begin_try()
            await self.ledger.mark(batch, "submitting")  # before /run: the claim token
            failed, refused, created = await self.pool.submit(batch)
        finally:
            self._submitting = {}
        stolen, self._stolen = self._stolen, set()
        kept = [s for s in created if s.chunk.index not in stolen]
        await self.ledger.siblings([(s.chunk.index, s.attempt, s.job_id) for s in kept])
        if stolen:  # the local runner has them: their new siblings would only duplicate it
            dupes = [s for s in self.pool.in_flight.values() if s.chunk.index in stolen]
            for sib in dupes:
                self.pool.forget(sib)
            await self.pool.cancel([s.job_id for s in dupes])
        for chunk in reversed(failed):
            if chunk.index not in stolen:
                chunk.not_before_s = time.monotonic() + 1.0
                self.pending.appendleft(chunk)  # the local runner may take it meanwhile
        for chunk in refused:  # the API refused this payload: only this process can run it
            if chunk.index not in stolen:
                self.take_back.append(chunk)
        if self.pool.breaker.stopped:
            self._stop_submitting(self.pool.breaker.stopped)
        self._poke()

    def _steal_submitting(self) -> Chunk | None:
        """A chunk of a /run round that is slow to answer, for an idle local runner."""
        if time.monotonic() - self._submit_started_s < self._steal_age_s():
            return None
        for index, chunk in self._submitting.items():
            if index not in self._stolen and not chunk.siblings_only:
                self._stolen.add(index)
                logger.info("chunk {}: its /run is slow to answer; running it here", index)
                return chunk
        return None

    def _stop_submitting(self, reason: str) -> None:
        """No more siblings: chunks a sibling already failed on (or, with no local runner, all
        pending ones) fail now; the rest run here."""
        if self._submissions_stopped:
            return
        self._submissions_stopped = True
        for chunk in list(self.pending):
            if chunk.siblings_only or not self.cfg.run_local:
                self.pending.remove(chunk)
                chunk.siblings_only = True
                self._retry(chunk, chunk.last_error or "not run")

    async def _poll(self) -> None:
        for sib, state in await self.pool.poll():
            self._ended(sib, state)
        await self._fetch_done()
        if self.pool.breaker.stopped and self.pool.status_fail_streak >= STATUS_FAILS_TO_GIVE_UP:
            await self._give_up_in_flight()
        if any(s.picked_up for s in self.pool.in_flight.values()):
            self.cap = self.cfg.workers
        for sib in self.pool.queued(self.cfg.pickup_timeout_s):
            await self._take_back(sib, reason="pickup timeout")
            self.cap = max(1, self.cap - 1)  # keep one probe in the queue

    async def _take_back(self, sib: Sibling, *, reason: str) -> None:
        """Cancel a queued sibling and queue its chunk for the local runner."""
        self.pool.forget(sib)
        logger.info("chunk {}: taking back sibling {} ({})", sib.chunk.index, sib.job_id, reason)
        self.stats.taken_back += 1
        self.take_back.append(sib.chunk)
        self._poke()
        await self.pool.cancel([sib.job_id])

    async def _give_up_in_flight(self) -> None:
        """The API answers nothing any more: run the chunks of the siblings in flight here."""
        sibs = list(self.pool.in_flight.values())
        if not sibs:
            return
        logger.warning("the API no longer answers: running {} siblings' chunks here", len(sibs))
        for sib in sibs:
            self.pool.forget(sib)
            self.stats.taken_back += 1
            self.take_back.append(sib.chunk)
        self._poke()
        await self.pool.cancel([s.job_id for s in sibs])

    # --- the local runner -----------------------------------------------------------------
    def _steal_age_s(self) -> float:
        return min(self.cfg.pickup_timeout_s, max(1.0, 2 * self.cfg.poll_interval_s))

    async def _next_local(self) -> Chunk | None:
        if self.take_back:
            return self.take_back.popleft()
        chunk = self._next_pending(time.monotonic(), local=True)
        if chunk is not None or self.pending:
            return chunk
        # Nothing left to hand out: rather than idle, take back a sibling still queued (not one
        # whose chunk already failed on a sibling; a pickup timeout still takes those back).
        queued = [s for s in self.pool.queued(self._steal_age_s()) if not s.chunk.siblings_only]
        if queued:
            await self._take_back(queued[0], reason="coordinator idle")
            return self.take_back.popleft() if self.take_back else None
        return self._steal_submitting()

    async def _local_loop(self) -> None:
        while not self.finished():
            chunk = await self._next_local()
            if chunk is None:
                await self._wait_changed(self._poll_interval_s())
                continue
            started_s = time.monotonic()
            logger.info("chunk {} ({} items): running here", chunk.index, chunk.size)
            self._running_here = chunk
            try:
                chunk.begin_try()
                await self.ledger.mark([chunk], "local")
                result = await self.run_local(chunk, self.cfg.deadline)
            except JobFailure as exc:
                self._retry(chunk, f"local run failed: {exc}")
            except Exception as exc:
                logger.opt(exception=exc).error("local run of chunk {} failed", chunk.index)
                self._retry(chunk, f"local run failed: {type(exc).__name__}: {exc}")
            else:
                if result.skipped is not None:
                    self._skipped(chunk, result, chunk.attempt, "")
                    continue
                logger.info(
                    "chunk {}: ran here in {:.2f} s", chunk.index, time.monotonic() - started_s
                )
                self.stats.chunks_local += 1
                self._record(chunk, result)
            finally:
                self._running_here = None

    # --- the loop -------------------------------------------------------------------------
    async def _wait_changed(self, timeout_s: float) -> None:
        self._changed.clear()
        try:
            async with asyncio.timeout(max(0.0, timeout_s)):
                await self._changed.wait()
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Run until every chunk has an outcome or the deadline passes."""
        local = asyncio.create_task(self._local_loop()) if self.cfg.run_local else None
        next_poll_s = time.monotonic() + self.cfg.poll_interval_s
        try:
            while not self.finished():
                now = time.monotonic()
                if self.cfg.deadline.passed:
                    logger.warning("job deadline reached with {} chunks open", len(self.pending))
                    break
                if local is not None and local.done():
                    local.result()  # surfaces a bug in the local runner
                await self._fill()
                if now >= next_poll_s:
                    await self._poll()
                    next_poll_s = time.monotonic() + self._poll_interval_s()
                await self._fetch_done()
                await self.ledger.flush()  # this wake-up's outcomes: one transaction
                if self.finished():
                    break
                wake_s = min(next_poll_s - time.monotonic(), self.cfg.deadline.remaining_s())
                await self._wait_changed(wake_s)
        finally:
            for task in (local, self._submit_task):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await asyncio.shield(self.pool.cancel_all())
            await asyncio.shield(self.ledger.flush())
