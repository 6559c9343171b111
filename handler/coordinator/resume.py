"""The coordinator's side of the chunk ledger: the fan-out's id and fingerprint, its plan as
ledger rows (and back, to resume), and a writer that batches the coordinator's ledger writes.

The ledger (`podfleet.pipeline.store.ledger`, in the job's DATABASE_URL) is synchronous; every
call here runs in a thread. The attempt number is the claim token: a try is written to the
ledger (`mark`) before it is handed out, so a sibling of an older attempt is refused
(`superseded`) and a second sibling of the same attempt (a /run retried after a 5xx) is refused
as a `duplicate` (docs/coordinator.md, "Resume")."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from podfleet.coordinator.chunks import Chunk
from podfleet.coordinator.merge import MalformedOutput, Merger, parse_sibling_output
from podfleet.coordinator.siblings import SiblingPool
from podfleet.coordinator.tally import Tally
from podfleet.envelope import ChunkRef, ParsedJob
from podfleet.output import JobOutput
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings

__all__ = [
    "OUTCOME_BATCH",
    "LedgerWriter",
    "ResumePlan",
    "chunks_from_rows",
    "fanout_id_of",
    "fingerprint",
    "open_ledger",
    "resume_fanout",
]

OUTCOME_BATCH = 20  # chunks whose stored outcomes are read at once (each up to a chunk's results)
_FINGERPRINTED = {"pipeline", "items", "items_from", "options", "date", "trigger", "cleanup"}


def fanout_id_of(parsed: ParsedJob, settings: Settings) -> str | None:
    """The ledger key of this job's fan-out: `run:<run_key>`, else the RunPod job id (stable
    across /retry and a re-queue after its worker died); None without a ledger (FANOUT_LEDGER
    off, or a local job with no run_key)."""
    if not settings.fanout_ledger:
        return None
    if parsed.envelope.run_key:
        return f"run:{parsed.envelope.run_key}"
    return None if parsed.job_id == "local" else parsed.job_id


def fingerprint(parsed: ParsedJob) -> str:
    """sha256 of the canonical JSON of what decides the fan-out's work."""
    data = parsed.envelope.model_dump(mode="json", include=_FINGERPRINTED)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def chunks_from_rows(rows: list[Any], parsed: ParsedJob) -> list[Chunk]:
    """The stored plan back as chunks (the same plan even if the worker count changed)."""
    chunks = []
    for row in sorted(rows, key=lambda r: r.chunk):
        if row.ref is not None:
            ref = ChunkRef.model_validate(row.ref)
            chunk = Chunk(row.chunk, range(ref.start, ref.stop), ref=ref)
        else:
            ps = list(row.positions or [])
            raw, items = parsed.envelope.items, parsed.items
            chunk = Chunk(row.chunk, ps, [raw[p] for p in ps], [items[p] for p in ps])
        chunk.attempt = row.attempt
        chunks.append(chunk)
    if [c.index for c in chunks] != list(range(len(chunks))):
        raise ValueError("the ledger's chunks are not numbered 0..n-1")
    return chunks


@dataclass
class ResumePlan:
    """What a resumed fan-out does with each stored chunk."""

    finished: list[int] = field(default_factory=list)  # done/failed: merged from their outcomes
    failed: set[int] = field(default_factory=set)  # of those, the ones that failed for good
    adopt: list[tuple[int, str]] = field(default_factory=list)  # submitted: (chunk, sibling id)
    retry: list[int] = field(default_factory=list)  # tried, no sibling known: attempt + 1

    @classmethod
    def of(cls, rows: list[Any]) -> ResumePlan:
        plan = cls()
        for row in rows:
            if row.state in ("done", "failed"):
                plan.finished.append(row.chunk)
                if row.state == "failed":
                    plan.failed.add(row.chunk)
            elif row.state == "submitted" and row.sibling_ids:
                plan.adopt.append((row.chunk, row.sibling_ids[-1]))
            elif row.state != "pending" or row.attempt > 0:
                plan.retry.append(row.chunk)
        return plan


class LedgerWriter:
    """The coordinator's ledger writes, batched: one transaction per submit round for its marks
    and one for its sibling ids, one per scheduler wake-up for the outcomes. Without a ledger
    (`ledger` None) every call does nothing. A failed write is logged and the fan-out goes on:
    siblings' loads are idempotent, the ledger only saves work."""

    def __init__(self, ledger: Any | None = None, fanout_id: str | None = None):
        self.ledger = ledger if fanout_id else None
        self.fanout_id = fanout_id if ledger is not None else None
        self._outcomes: list[tuple[int, int, str, dict[str, Any]]] = []
        self._pairs: list[tuple[int, int, str]] = []

    @property
    def enabled(self) -> bool:
        return self.ledger is not None

    async def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, self.fanout_id, *args)
        except Exception as exc:
            logger.warning("chunk ledger: {} failed, going on without it: {}", what, exc)
            return None

    async def mark(self, chunks: list[Chunk], state: str) -> None:
        """Before a try is handed out: its attempt, state `submitting` or `local`."""
        if self.ledger is not None and chunks:
            marks = [(c.index, c.attempt, state) for c in chunks]
            await self._call("mark", self.ledger.mark_attempts, marks)

    async def siblings(self, pairs: list[tuple[int, int, str]]) -> None:
        """(chunk, attempt, sibling job id) as soon as /run answered."""
        if self.ledger is not None and pairs:
            await self._call("record siblings", self.ledger.record_siblings, pairs)

    def sibling_later(self, chunk: int, attempt: int, job_id: str) -> None:
        """Buffer an adopted sibling's id (a duplicate's holder) for the next `flush`."""
        if self.ledger is not None:
            self._pairs.append((chunk, attempt, job_id))

    def outcome(self, chunk: Chunk, state: str, outcome: dict[str, Any]) -> None:
        """Buffer a chunk's outcome (`done` or `failed`) for the next `flush`."""
        if self.ledger is not None:
            self._outcomes.append((chunk.index, chunk.attempt, state, outcome))

    async def flush(self) -> None:
        if self._pairs:
            pairs, self._pairs = self._pairs, []
            await self.siblings(pairs)
        if self.ledger is not None and self._outcomes:
            batch, self._outcomes = self._outcomes, []
            await self._call("record outcomes", self.ledger.record_outcomes, batch)

    async def outcomes(self, chunks: list[int]) -> dict[int, dict[str, Any]]:
        """Stored outcomes of `chunks` (a batch at most OUTCOME_BATCH long)."""
        if self.ledger is None or not chunks:
            return {}
        return await self._call("read outcomes", self.ledger.outcomes, chunks) or {}

    async def claim(self, chunk: Chunk, claimant: str) -> Any | None:
        """Claim the chunk's current attempt for a local run; None without a ledger."""
        if self.ledger is None:
            return None
        return await self._call("claim", self.ledger.claim, chunk.index, chunk.attempt, claimant)

    async def close(self, state: str) -> dict[str, Any]:
        """The fan-out's summary (states, attempts, duplicates); closed when it `state`."""
        if self.ledger is None:
            return {}
        await self.flush()
        summary = await self._call("summary", self.ledger.summary) or {}
        if state:
            await self._call("close", self.ledger.close_fanout, state, summary)
        return dict(summary)


def _row(chunk: Chunk, row_type: Any) -> Any:
    ref = chunk.ref.model_dump(mode="json") if chunk.ref is not None else None
    positions = None if ref is not None else list(chunk.positions)
    return row_type(
        chunk=chunk.index,
        positions=positions,
        ref=ref,
        state="pending",
        attempt=chunk.attempt,
        sibling_ids=[],
        claimed_by=None,
        duplicates=0,
    )


Planner = Callable[[], Awaitable[tuple[int, list[Chunk]]]]


async def open_ledger(
    parsed: ParsedJob, settings: Settings, plan: Planner
) -> tuple[LedgerWriter, list[Any] | None, int, list[Chunk]]:
    """Open (or find) the job's fan-out in the ledger: (the writer, the stored rows when the
    fan-out was known, the item count, the chunks). A known fan-out keeps its stored plan
    (whatever the worker count is now) and its source is not scanned again; a new one is
    planned (`plan()`) and stored. No ledger (off, a local job, unreachable, not installed): a
    writer that does nothing."""
    fanout_id = fanout_id_of(parsed, settings)
    try:
        from podfleet.pipeline.store.ledger import ChunkRow, Ledger, LedgerConflict
    except ImportError as exc:
        logger.warning("no chunk ledger in this build ({}); fan-out kept in memory", exc)
        fanout_id = None
    if fanout_id is None:
        return LedgerWriter(), None, *(await plan())
    url, fp = settings.database_url.get_secret_value(), fingerprint(parsed)
    planned: tuple[int, list[Chunk]] | None = None
    try:
        ledger = Ledger(url)
        known = await asyncio.to_thread(ledger.fanout, fanout_id)
    except Exception as exc:
        logger.warning("chunk ledger unavailable, fan-out kept in memory: {}", exc)
        return LedgerWriter(), None, *(await plan())
    if known is None or known.get("fingerprint") != fp:
        planned = await plan()
    n_items = planned[0] if planned else int(known["items"] if known else 0)

    def rows() -> list[Any]:
        if planned is None:
            raise RuntimeError(f"fan-out {fanout_id!r} left the ledger while it was opened")
        return [_row(c, ChunkRow) for c in planned[1]]

    try:
        stored, resumed = await asyncio.to_thread(
            ledger.open_fanout,
            fanout_id,
            job_id=parsed.job_id,
            fingerprint=fp,
            items=n_items,
            plan=rows,
        )
    except LedgerConflict as exc:
        field_name = "run_key" if parsed.envelope.run_key else "id"
        raise InputError(
            field_name,
            f"invalid input: {field_name}: fan-out {fanout_id!r} was started with other input "
            f"(pipeline, items, options, date, trigger or cleanup differ); use a new "
            f"{field_name} ({exc})",
        ) from None
    except Exception as exc:
        logger.warning("chunk ledger unavailable, fan-out kept in memory: {}", exc)
        return LedgerWriter(), None, *(planned or await plan())
    logger.info(
        "fan-out {}: {} ({} chunks)", fanout_id, "resumed" if resumed else "new", len(stored)
    )
    writer = LedgerWriter(ledger, fanout_id)
    if not resumed:
        assert planned is not None  # rows() ran
        return writer, None, *planned
    return writer, stored, n_items, chunks_from_rows(stored, parsed)


async def resume_fanout(
    rows: list[Any],
    chunks: list[Chunk],
    writer: LedgerWriter,
    pool: SiblingPool,
    merger: Merger | Tally,
    *,
    want_records: bool,
    results_inline: bool,
    on_accept: Callable[[Chunk, JobOutput], None],
) -> int:
    """Apply a stored fan-out to this run: done/failed chunks merged from their outcomes (read
    OUTCOME_BATCH chunks at a time), submitted ones adopted by their last sibling id (polled,
    not resubmitted), tried ones set to try again with attempt + 1. Returns the chunks reused."""
    plan = ResumePlan.of(rows)
    reused = 0
    for start in range(0, len(plan.finished), OUTCOME_BATCH):
        batch = plan.finished[start : start + OUTCOME_BATCH]
        stored = await writer.outcomes(batch)
        for index in batch:
            chunk, outcome = chunks[index], stored.get(index)
            chunk.tried = True
            if index in plan.failed:
                errors = (outcome or {}).get("errors") or [{}]
                message = str(errors[0].get("message") or "failed in an earlier run")
                merger.fail(chunk, "coordinator", message)
                reused += 1
                continue
            try:
                result = parse_sibling_output(
                    outcome, chunk, want_records=want_records, results_inline=results_inline
                )
            except MalformedOutput as exc:
                logger.warning("chunk {}: stored outcome unusable, run again: {}", index, exc)
                continue
            if merger.accept(chunk, result):
                on_accept(chunk, result)
                reused += 1
    for index, job_id in plan.adopt:
        chunks[index].tried = True
        pool.adopt(job_id, chunks[index])
    for index in plan.retry:
        chunks[index].tried = True  # its next try takes attempt + 1
    logger.info(
        "resumed: {} chunks reused, {} siblings adopted, {} to try again",
        reused,
        len(plan.adopt),
        len(plan.retry),
    )
    return reused
