"""A chunk's side of the chunk ledger: claim its attempt before any work, write its outcome after.

A protocol-2 sibling (one with `sibling.fanout_id`) asks the ledger for `(fanout_id, chunk,
attempt)` when it starts; a refused claim (the chunk is done, a later attempt exists, or another
job holds this attempt) means it returns at once with a `skipped` output: no work, no load. A
granted one writes its whole outcome (results included) when its run completes. The ledger being
unreachable is never a reason not to work: loads are idempotent, so the chunk runs anyway and
the coordinator records what it returns. Used by siblings (`podfleet.worker`) and by a
coordinator's local runs of a chunk (claimant `<parent id>:local`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from loguru import logger
from podfleet.envelope import ParsedJob
from podfleet.output import JobOutput
from podfleet.settings import Settings

if TYPE_CHECKING:
    from podfleet.pipeline.store.ledger import Claim, Ledger

__all__ = ["chunk_key", "claim_chunk", "finish_chunk", "skipped_output"]


def chunk_key(parsed: ParsedJob, settings: Settings) -> tuple[str, int, int] | None:
    """`(fanout_id, chunk, attempt)` when this job's chunk is kept in the ledger: a protocol-2
    sibling envelope with `fanout_id`, and FANOUT_LEDGER on; else None."""
    sibling = parsed.envelope.sibling
    if not settings.fanout_ledger or sibling is None or sibling.fanout_id is None:
        return None
    if sibling.protocol < 2:
        return None
    return sibling.fanout_id, sibling.chunk, sibling.attempt


def _ledger(settings: Settings) -> Ledger:
    """The job database's ledger. A Ledger is only its URL: the engine behind it is the
    process's one per URL (`store.db.get_engine`, migrated on first use), so building one per
    call shares it, and follows `dispose_engines` (tests) instead of keeping a stale engine."""
    from podfleet.pipeline.store.ledger import Ledger  # SQLAlchemy only where a ledger is used

    return Ledger(settings.database_url.get_secret_value())


def _claim(settings: Settings, key: tuple[str, int, int], claimant: str) -> Claim:
    fanout_id, chunk, attempt = key
    return _ledger(settings).claim(fanout_id, chunk, attempt, claimant)


def _finish(
    settings: Settings, key: tuple[str, int, int], claimant: str, outcome: dict[str, Any]
) -> bool:
    fanout_id, chunk, attempt = key
    return _ledger(settings).finish(fanout_id, chunk, attempt, claimant, outcome)


async def claim_chunk(
    parsed: ParsedJob, settings: Settings, claimant: str | None = None
) -> Claim | None:
    """Claim this job's chunk attempt for `claimant` (default: the job's own id). None when the
    job keeps no ledger (`chunk_key`) or the ledger cannot be reached (logged; run anyway)."""
    key = chunk_key(parsed, settings)
    if key is None:
        return None
    who = claimant or parsed.job_id
    try:
        claim = await asyncio.to_thread(_claim, settings, key, who)
    except Exception as exc:  # the ledger is a guard, not a dependency: loads are idempotent
        logger.warning(
            "chunk ledger unreachable, running chunk {} attempt {} unclaimed: {}: {}",
            key[1],
            key[2],
            type(exc).__name__,
            exc,
        )
        return None
    if not claim.granted and claim.reason in (None, "unknown"):
        # The ledger has no such chunk: this worker's DATABASE_URL is not its coordinator's
        # (a misconfiguration). Skipping would lose the chunk; running it cannot hurt.
        logger.warning(
            "chunk {} of fan-out {} is not in this worker's ledger (is DATABASE_URL the "
            "coordinator's?): running it unclaimed",
            key[1],
            key[0],
        )
        return None
    if not claim.granted:
        logger.info(
            "chunk {} attempt {} of fan-out {} not claimed ({}{}): skipping its work",
            key[1],
            key[2],
            key[0],
            claim.reason,
            f", held by {claim.holder}" if claim.holder else "",
        )
    return claim


async def finish_chunk(
    parsed: ParsedJob, settings: Settings, outcome: dict[str, Any], claimant: str | None = None
) -> bool:
    """Write `outcome` (the chunk's whole `JobOutput.to_output()`, results included) to the
    ledger before the job returns. True when the ledger holds this chunk's outcome afterwards
    (ours, or an earlier `done` one); False when there is no ledger or it could not be written
    (logged: then the outcome travels only in the job's output)."""
    key = chunk_key(parsed, settings)
    if key is None:
        return False
    who = claimant or parsed.job_id
    try:
        written = await asyncio.to_thread(_finish, settings, key, who, outcome)
    except Exception as exc:
        logger.warning(
            "chunk ledger unreachable, outcome of chunk {} attempt {} not written: {}: {}",
            key[1],
            key[2],
            type(exc).__name__,
            exc,
        )
        return False
    if not written:
        logger.info("chunk {} already done in the ledger: kept the first outcome", key[1])
    return True


def skipped_output(parsed: ParsedJob, claim: Claim) -> dict[str, Any]:
    """The output of a sibling whose claim was refused: ok, no items, no results, and why
    (`skipped`: done | superseded | duplicate, `duplicate_of`: the job holding the attempt)."""
    env = parsed.envelope
    out = JobOutput(
        ok=True,
        date=env.date,
        trigger=env.trigger,
        cleanup=env.cleanup,
        pipeline=parsed.pipeline.name,
        mode="worker",
        items=0,
        results=[],
        skipped=claim.reason or "unknown",
        duplicate_of=claim.holder,
    )
    return out.to_output()
