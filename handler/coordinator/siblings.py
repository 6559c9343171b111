"""The coordinator's in-flight sibling jobs: submit, poll in paced batches, cancel; and the
breaker that stops submitting to an endpoint that refuses every submission."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger
from podfleet.api import (
    ApiError,
    ApiTimeout,
    AuthError,
    BadRequest,
    EndpointClient,
    JobState,
    JobStatus,
    Policy,
)
from podfleet.coordinator.chunks import Chunk, FanoutInfo, sibling_input
from podfleet.coordinator.stats import FanoutStats
from podfleet.envelope import ParsedJob
from podfleet.pipeline.deadline import Deadline

__all__ = ["Sibling", "SiblingPool", "SubmitBreaker"]

CANCEL_TIMEOUT_S = 15.0
SUBMIT_TIMEOUT_S = 30.0  # one /run, its client-side retries included


class SubmitBreaker:
    """Whether the coordinator still submits siblings.

    A 401/403 stops submissions for the rest of the job at once (a wrong key does not get
    better). `threshold` consecutive failed submissions (each already retried by the client)
    open the breaker for a cool-down (doubling), during which the coordinator works alone; after
    it, one probe at a time; a success closes it. After `max_opens` openings without a success
    submissions stop for good. Either way the job falls back to local work in bounded time
    instead of resubmitting the same chunks every second."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown_s: float = 5.0,
        max_cooldown_s: float = 60.0,
        max_opens: int = 3,
    ):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.max_opens = max_opens
        self.failures = 0  # consecutive
        self.opens = 0  # since the last success
        self.open_until_s = 0.0
        self.stopped = ""  # why submissions stopped for good; "" while they may go on

    def allows(self, now_s: float) -> bool:
        return not self.stopped and now_s >= self.open_until_s

    def batch_limit(self, cap: int) -> int:
        """Submissions allowed in the next round: one probe while recovering."""
        return 1 if self.opens else cap

    def record(self, reply: JobState | ApiError, now_s: float) -> None:
        if self.stopped:
            return
        if isinstance(reply, AuthError):
            self.stopped = f"the API refused our key ({reply}); fix RUNPOD_API_KEY"
            logger.error("submissions stopped, working alone: {}", self.stopped)
            return
        if not isinstance(reply, ApiError):
            if self.opens:
                logger.info("endpoint accepts submissions again")
            self.failures = self.opens = 0
            return
        if isinstance(reply, BadRequest):
            return  # about this payload, not the endpoint
        if now_s < self.open_until_s:
            return  # sent before it opened (the same round): no new evidence
        self.failures += 1
        if self.failures < self.threshold:
            return
        self.opens += 1
        self.failures = self.threshold - 1  # the next failure (a probe's) opens it again
        if self.opens >= self.max_opens:
            self.stopped = (
                f"the endpoint refused {self.threshold + self.opens - 1} submissions in a row "
                f"(last: {reply})"
            )
            logger.error("submissions stopped, working alone: {}", self.stopped)
            return
        wait_s = min(self.max_cooldown_s, self.cooldown_s * 2 ** (self.opens - 1))
        self.open_until_s = now_s + wait_s
        logger.warning("endpoint refuses submissions; none for {:.0f} s: {}", wait_s, reply)


@dataclass
class Sibling:
    job_id: str
    chunk: Chunk
    submitted_s: float
    status: JobStatus = JobStatus.IN_QUEUE
    picked_up: bool = False
    attempt: int = 0  # the chunk attempt it was given (its claim token)
    adopted: bool = False  # submitted by someone else (an earlier coordinator, a duplicate /run)

    def queued_for_s(self, now_s: float) -> float:
        return 0.0 if self.picked_up else now_s - self.submitted_s


class SiblingPool:
    """Siblings submitted and not yet finished, keyed by job id."""

    def __init__(
        self,
        client: EndpointClient,
        parsed: ParsedJob,
        policy: Policy,
        stats: FanoutStats,
        *,
        return_records: bool,
        cleanup: bool,
        breaker: SubmitBreaker | None = None,
        submit_timeout_s: float | None = None,
        deadline: Deadline | None = None,
        fanout: FanoutInfo | None = None,
    ):
        self.client = client
        self.breaker = breaker or SubmitBreaker()
        self.submit_timeout_s = SUBMIT_TIMEOUT_S if submit_timeout_s is None else submit_timeout_s
        self.parsed = parsed
        self.policy = policy
        self.stats = stats
        self.return_records = return_records
        self.cleanup = cleanup
        self.deadline = deadline  # the job's: each sibling is told it (`sibling.deadline_at`)
        self.fanout = fanout or FanoutInfo()
        self.in_flight: dict[str, Sibling] = {}
        self.status_fail_streak = 0  # status rounds in a row that failed

    def __len__(self) -> int:
        return len(self.in_flight)

    async def _submit_one(self, payload: dict[str, Any]) -> JobState | ApiError:
        try:
            async with asyncio.timeout(self.submit_timeout_s):
                return await self.client.run(payload, policy=self.policy)
        except ApiError as exc:
            return exc
        except TimeoutError:
            return ApiTimeout(
                f"run: no answer within {self.submit_timeout_s:g} s (retries included)",
                operation="run",
            )

    async def submit(self, chunks: list[Chunk]) -> tuple[list[Chunk], list[Chunk], list[Sibling]]:
        """Submit one sibling per chunk (concurrently, each bounded in time). Returns the chunks
        that could not be submitted (worth another try; refused for their payload) and the
        siblings created."""
        payloads = [
            sibling_input(
                self.parsed,
                c,
                return_records=self.return_records,
                cleanup=self.cleanup,
                deadline=self.deadline,
                fanout=self.fanout,
            )
            for c in chunks
        ]
        failed: list[Chunk] = []
        refused: list[Chunk] = []
        created: list[Sibling] = []

        async def one(chunk: Chunk, attempt: int, payload: dict[str, Any]) -> None:
            # Each sibling is polled from its own answer on: one slow /run (retried 429s) does
            # not hold the others of its round out of the pool. `attempt`: as sent (a local run
            # may take a new one meanwhile).
            reply = await self._run_one(payload)
            now = time.monotonic()
            if not isinstance(reply, ApiError) and not reply.id:
                reply = ApiError("run: the reply has no job id", operation="run")
            self.breaker.record(reply, now)
            if isinstance(reply, ApiError):
                self.stats.submit_errors += 1
                logger.warning("chunk {}: submit failed: {}", chunk.index, reply)
                (refused if isinstance(reply, BadRequest) else failed).append(chunk)
                return
            sib = Sibling(reply.id, chunk, now, reply.status, attempt=attempt)
            self.in_flight[reply.id] = sib
            created.append(sib)
            self.stats.siblings_submitted += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, len(self.in_flight))
            logger.debug("chunk {} attempt {} → sibling {}", chunk.index, attempt, reply.id)

        sends = [one(c, c.attempt, p) for c, p in zip(chunks, payloads, strict=True)]
        await asyncio.gather(*sends)
        self.stats.max_in_flight = max(self.stats.max_in_flight, len(self.in_flight))
        if self.breaker.stopped:
            self.stats.submissions_stopped = self.breaker.stopped
        return failed, refused, created

    async def _run_one(self, payload: dict[str, Any]) -> JobState | ApiError:
        # RunPod never dispatches an empty input (the job waits out its TTL): never send one.
        if not payload or not (payload.get("items") or payload.get("items_from")):
            return BadRequest("run: refusing to submit a sibling with no items", operation="run")
        return await self._submit_one(payload)

    def adopt(self, job_id: str, chunk: Chunk, *, attempt: int | None = None) -> Sibling:
        """Poll an existing sibling for `chunk` (recorded in the ledger, or the holder of a
        duplicate's claim) instead of submitting one."""
        sib = Sibling(job_id, chunk, time.monotonic(), attempt=chunk.attempt, adopted=True)
        if attempt is not None:
            sib.attempt = attempt
        self.in_flight[job_id] = sib
        self.stats.siblings_adopted += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, len(self.in_flight))
        return sib

    async def poll(self) -> list[tuple[Sibling, JobState | None]]:
        """One status round over every sibling in flight (paced by the client's rate limits).
        Returns the siblings that ended (terminal state, or None when the API lost them) and
        forgets them; updates the others' status."""
        if not self.in_flight:
            return []
        ids = list(self.in_flight)
        try:
            states = await self.client.status_many(ids)
        except ApiError as exc:
            self.stats.status_errors += 1
            self.status_fail_streak += 1
            logger.warning("status round failed, will retry: {}", exc)
            return []
        self.status_fail_streak = 0
        ended: list[tuple[Sibling, JobState | None]] = []
        for job_id, state in states.items():
            sib = self.in_flight.get(job_id)
            if sib is None:  # taken back while we polled
                continue
            if state is None or state.terminal:
                del self.in_flight[job_id]
                ended.append((sib, state))
                continue
            sib.status = state.status
            if state.status == JobStatus.IN_PROGRESS:
                sib.picked_up = True
        return ended

    def queued(self, min_age_s: float) -> list[Sibling]:
        """Siblings no worker has picked up for at least `min_age_s` (oldest first)."""
        now = time.monotonic()
        found = [s for s in self.in_flight.values() if s.queued_for_s(now) >= min_age_s]
        return sorted(found, key=lambda s: s.submitted_s)

    def forget(self, sib: Sibling) -> None:
        self.in_flight.pop(sib.job_id, None)

    async def cancel(self, job_ids: list[str]) -> int:
        """Cancel siblings through the API; returns how many the API confirmed."""
        if not job_ids:
            return 0

        async def one(job_id: str) -> bool:
            try:
                await self.client.cancel(job_id)
                return True
            except ApiError as exc:  # 404: already gone; others: logged, nothing more to do
                logger.warning("cancel of sibling {} failed: {}", job_id, exc)
                return False

        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                done = await asyncio.gather(*(one(j) for j in job_ids))
        except TimeoutError:
            logger.error("cancelling {} siblings timed out", len(job_ids))
            return 0
        self.stats.cancelled += sum(done)
        return sum(done)

    async def cancel_all(self) -> None:
        """Cancel every sibling still in flight (deadline, or the coordinator was cancelled)."""
        sibs = list(self.in_flight.values())
        self.in_flight.clear()
        if sibs:
            logger.info("cancelling {} outstanding siblings", len(sibs))
            await self.cancel([s.job_id for s in sibs])
