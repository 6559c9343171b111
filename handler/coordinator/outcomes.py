"""What the scheduler does with a try's outcome: merge it (and buffer it for the ledger), retry
the chunk with backoff, or act on a try the ledger told to skip its work (done, duplicate,
superseded) or a worker refused for the sibling protocol (a rolling release)."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger
from podfleet.api import JobState, JobStatus
from podfleet.coordinator.chunks import Chunk
from podfleet.coordinator.merge import MalformedOutput, Merger, parse_sibling_output
from podfleet.coordinator.resume import LedgerWriter
from podfleet.coordinator.siblings import Sibling, SiblingPool
from podfleet.coordinator.stats import FanoutStats
from podfleet.coordinator.tally import Tally
from podfleet.output import JobOutput
from podfleet.pipeline.backoff import full_jitter_s

if TYPE_CHECKING:
    from podfleet.coordinator.scheduler import SchedulerConfig

__all__ = ["PROTOCOL_REFUSALS_MAX", "ChunkOutcomes", "failed_outcome"]

# Tries of one chunk a worker may refuse for `sibling.protocol` (a rolling release: an older or
# newer image) without it counting against SIBLING_MAX_RETRIES.
PROTOCOL_REFUSALS_MAX = 10
LOCAL_AFTER_REFUSALS = 2  # refused this often, a chunk runs in the coordinator (when it may)


class ChunkOutcomes:
    """The Scheduler's outcome handling (a base class: it shares the scheduler's state)."""

    pool: SiblingPool
    merger: Merger | Tally
    stats: FanoutStats
    ledger: LedgerWriter
    pending: deque[Chunk]
    take_back: deque[Chunk]
    _submitting: dict[int, Chunk]
    _running_here: Chunk | None
    _fetch: list[Chunk]
    _rng: random.Random
    cfg: SchedulerConfig
    on_progress: Callable[[], None]
    on_accept: Callable[[Chunk, JobOutput], None]

    def _poke(self) -> None:
        raise NotImplementedError

    def _record(self, chunk: Chunk, result: JobOutput, *, stored: bool = False) -> None:
        if self.merger.accept(chunk, result):
            if not stored:
                self.ledger.outcome(chunk, "done", result.to_output())
            self.on_accept(chunk, result)
            self.on_progress()
        else:
            self.stats.duplicates_ignored += 1
        self._poke()

    def _busy(self, chunk: Chunk) -> bool:
        """A try of `chunk` is queued, being submitted, out on a sibling or running here."""
        return (
            chunk in self.pending
            or chunk in self.take_back
            or chunk.index in self._submitting
            or chunk is self._running_here
            or any(s.chunk is chunk for s in self.pool.in_flight.values())
        )

    def _skipped(self, chunk: Chunk, result: JobOutput, attempt: int, job_id: str) -> None:
        """A try (sibling `job_id`, or a local run) that did no work because the ledger said
        so (docs/coordinator.md)."""
        if chunk.index in self.merger.finished:
            return
        who = f"sibling {job_id}" if job_id else "the local run"
        reason = result.skipped
        if reason == "done":  # its outcome is in the ledger
            self.stats.skipped_done += 1
            self._fetch.append(chunk)
        elif reason == "duplicate" and result.duplicate_of and result.duplicate_of != job_id:
            self.stats.skipped_duplicate += 1
            holder = result.duplicate_of
            if holder.endswith(":local"):  # this coordinator runs it (no job to poll)
                if not self._busy(chunk):
                    self._again(chunk, f"{who}: attempt {attempt} held by a local run")
            elif holder not in self.pool.in_flight:  # poll the holder instead
                logger.info("chunk {}: {} duplicates {}; polling it", chunk.index, who, holder)
                self.pool.adopt(holder, chunk, attempt=attempt)
                self.ledger.sibling_later(chunk.index, attempt, holder)
        elif reason == "superseded":
            self.stats.skipped_superseded += 1
            if not self._busy(chunk):
                self._again(chunk, f"{who}: attempt {attempt} superseded, no later one running")
        else:
            self._retry(chunk, f"{who} skipped its chunk: {reason}")

    def _again(self, chunk: Chunk, reason: str, *, wait_s: float = 0.5) -> None:
        """Another try that does not count as a failure."""
        logger.info("chunk {}: trying again ({})", chunk.index, reason)
        chunk.not_before_s = time.monotonic() + wait_s
        self.pending.appendleft(chunk)
        self._poke()

    async def _fetch_done(self) -> None:
        """Merge the stored outcomes of chunks a skipped try found done."""
        fetch, self._fetch = self._fetch, []
        stored = await self.ledger.outcomes([c.index for c in fetch]) if fetch else {}
        for chunk in fetch:
            try:
                result = parse_sibling_output(
                    stored.get(chunk.index),
                    chunk,
                    want_records=self.cfg.want_records,
                    results_inline=self.cfg.results_inline,
                )
            except MalformedOutput as exc:
                self._retry(chunk, f"the ledger's outcome: {exc}")
            else:
                self._record(chunk, result, stored=True)

    def _retry(self, chunk: Chunk, reason: str) -> None:
        """A failed attempt: try again with backoff, or report the chunk's items failed."""
        if chunk.index in self.merger.finished:
            return
        chunk.last_error = reason
        stopped = self.pool.breaker.stopped
        if stopped and chunk.siblings_only:  # a sibling failed on it; none can take it again
            reason = f"{reason}; not retried: submissions stopped ({stopped})"
        chunk.failures += 1
        if chunk.failures > self.cfg.max_retries or (stopped and chunk.siblings_only):
            logger.error("chunk {} failed for good: {}", chunk.index, reason)
            self.stats.chunks_failed += 1
            message = f"chunk {chunk.index} failed after {chunk.failures} attempts: {reason}"
            self.merger.fail(chunk, "coordinator", message)
            self.ledger.outcome(chunk, "failed", failed_outcome(chunk, message))
            self.on_progress()
        else:
            self.stats.retries += 1
            chunk.not_before_s = time.monotonic() + full_jitter_s(
                chunk.failures, self.cfg.retry_base_s, self.cfg.retry_max_s, self._rng
            )
            logger.warning("chunk {} retry {}: {}", chunk.index, chunk.failures, reason)
            self.pending.appendleft(chunk)
        self._poke()

    def _ended(self, sib: Sibling, state: JobState | None) -> None:
        chunk = sib.chunk
        if state is None or state.status != JobStatus.COMPLETED:
            chunk.siblings_only = True
        if state is None:
            self.stats.lost += 1
            self._retry(chunk, f"sibling {sib.job_id} lost (the API no longer knows it)")
        elif state.status == JobStatus.COMPLETED:
            try:
                result = parse_sibling_output(
                    state.output,
                    chunk,
                    want_records=self.cfg.want_records,
                    results_inline=self.cfg.results_inline,
                )
            except MalformedOutput as exc:
                self._retry(chunk, str(exc))
            else:
                if result.skipped is not None:
                    self._skipped(chunk, result, sib.attempt, sib.job_id)
                else:
                    self._record(chunk, result)
        elif sib.adopted and state.status == JobStatus.CANCELLED:
            # e.g. cancelled by the coordinator before this one (at its deadline): no fault of
            # the chunk's, and not a sign that it kills workers.
            chunk.siblings_only = False
            self._again(chunk, f"adopted sibling {sib.job_id} was cancelled")
        elif self._protocol_refused(chunk, state):
            # An older or newer worker (a rolling release): not this chunk's fault. A refusing
            # worker answers in milliseconds and takes the next try at once, so it gets more than
            # its share of them: refused twice, the chunk runs here (this process speaks the
            # protocol it sent); before that, another sibling after a jittered pause.
            logger.warning("chunk {}: a worker refused the sibling protocol", chunk.index)
            chunk.siblings_only = False
            reason = f"sibling {sib.job_id}: {str(state.error)[:300]}"
            if self.cfg.run_local and chunk.protocol_refusals >= LOCAL_AFTER_REFUSALS:
                refusals = chunk.protocol_refusals
                logger.info("chunk {}: refused {} times; running it here", chunk.index, refusals)
                self.take_back.append(chunk)
                self._poke()
            else:
                wait_s = full_jitter_s(chunk.protocol_refusals, 0.5, 2.0, self._rng)
                self._again(chunk, reason, wait_s=wait_s)
        else:  # FAILED, TIMED_OUT, CANCELLED by someone else
            detail = f": {str(state.error)[:300]}" if state.error else ""
            self._retry(chunk, f"sibling {sib.job_id} ended {state.status}{detail}")

    def _protocol_refused(self, chunk: Chunk, state: JobState) -> bool:
        """A FAILED sibling whose worker refused `sibling.protocol` (a newer one names it in its
        InputError; an older one says `sibling.protocol: unknown field`), within the bound."""
        if state.status != JobStatus.FAILED or "sibling.protocol" not in str(state.error or ""):
            return False
        chunk.protocol_refusals += 1
        if chunk.protocol_refusals > PROTOCOL_REFUSALS_MAX:
            return False
        self.stats.protocol_refusals += 1
        return True


def failed_outcome(chunk: Chunk, message: str) -> dict[str, Any]:
    """The ledger's outcome of a chunk that failed for good (its items have no results)."""
    error = {"item_id": "", "stage": "coordinator", "message": message, "retryable": True}
    return {"results": [], "items": chunk.size, "succeeded": 0, "errors": [error]}
