"""The coordinator's in-flight sibling jobs: submit, poll in paced batches, cancel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger
from podfleet.api import ApiError, EndpointClient, JobState, JobStatus, Policy
from podfleet.coordinator.chunks import Chunk, sibling_input
from podfleet.coordinator.stats import FanoutStats
from podfleet.envelope import ParsedJob

__all__ = ["Sibling", "SiblingPool"]

CANCEL_TIMEOUT_S = 15.0


@dataclass
class Sibling:
    job_id: str
    chunk: Chunk
    submitted_s: float
    status: JobStatus = JobStatus.IN_QUEUE
    picked_up: bool = False

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
    ):
        self.client = client
        self.parsed = parsed
        self.policy = policy
        self.stats = stats
        self.return_records = return_records
        self.cleanup = cleanup
        self.in_flight: dict[str, Sibling] = {}

    def __len__(self) -> int:
        return len(self.in_flight)

    def chunk_in_flight(self, chunk: Chunk) -> bool:
        return any(s.chunk is chunk for s in self.in_flight.values())

    async def submit(self, chunks: list[Chunk]) -> list[Chunk]:
        """Submit one sibling per chunk (concurrently); returns the chunks that could not be."""
        payloads = [
            sibling_input(self.parsed, c, return_records=self.return_records, cleanup=self.cleanup)
            for c in chunks
        ]
        replies = await self.client.submit_many(
            payloads, concurrency=max(1, len(payloads)), policy=self.policy
        )
        failed = []
        now = time.monotonic()
        for chunk, reply in zip(chunks, replies, strict=True):
            if isinstance(reply, ApiError) or not reply.id:
                self.stats.submit_errors += 1
                logger.warning("chunk {}: submit failed: {}", chunk.index, reply)
                failed.append(chunk)
                continue
            self.in_flight[reply.id] = Sibling(reply.id, chunk, now, reply.status)
            self.stats.siblings_submitted += 1
            logger.debug("chunk {} attempt {} → sibling {}", chunk.index, chunk.attempt, reply.id)
        self.stats.max_in_flight = max(self.stats.max_in_flight, len(self.in_flight))
        return failed

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
            logger.warning("status round failed, will retry: {}", exc)
            return []
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

    async def cancel_all(self) -> list[Sibling]:
        """Cancel every sibling still in flight (deadline, or the coordinator was cancelled)."""
        sibs = list(self.in_flight.values())
        self.in_flight.clear()
        if sibs:
            logger.info("cancelling {} outstanding siblings", len(sibs))
            await self.cancel([s.job_id for s in sibs])
        return sibs

    def describe(self) -> dict[str, Any]:
        return {"siblings_in_flight": len(self.in_flight)}
