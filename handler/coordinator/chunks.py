"""Chunks of a coordinator job's items and the sibling job input built from one."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from podfleet.envelope import SIBLING_PROTOCOL, ChunkRef, ParsedJob, SiblingInfo
from podfleet.pipeline.deadline import Deadline
from pydantic import BaseModel

__all__ = [
    "Chunk",
    "FanoutInfo",
    "chunk_job",
    "chunk_sizes",
    "item_order",
    "local_job",
    "ref_chunks",
    "sibling_input",
]

INTERLEAVE_SEED = 0  # fixed: the same job always gets the same chunks


@dataclass
class Chunk:
    """Some of the job's items: `raw[k]` is the job's item number `positions[k]`. A chunk of an
    `items_from` job holds no items: `ref` names its rows and `positions` is their `range`."""

    index: int
    positions: Sequence[int]
    raw: list[dict[str, Any]] = field(default_factory=list)  # the items, as a sibling gets them
    parsed: list[BaseModel] = field(default_factory=list)  # the same, validated (a local run)
    ref: ChunkRef | None = None
    attempt: int = 0  # the claim token of the current (or next) try, in the ledger
    tried: bool = False  # the current attempt was handed out: the next try bumps it
    failures: int = 0  # failed tries, against SIBLING_MAX_RETRIES
    protocol_refusals: int = 0  # tries a worker refused for the sibling protocol
    not_before_s: float = 0.0  # monotonic time before which a retry must not start
    last_error: str = ""
    # A sibling running it failed, timed out or was lost (its worker may have died on one of
    # these items): retries go to siblings, so a poison item cannot take the coordinator down.
    siblings_only: bool = False

    @property
    def size(self) -> int:
        return len(self.positions)

    def key(self, parent_id: str) -> str:
        return f"{parent_id}:{self.index}"

    def begin_try(self) -> int:
        """The attempt of a new try: the next one once the current was handed out."""
        if self.tried:
            self.attempt += 1
        self.tried = True
        return self.attempt


@dataclass(frozen=True)
class FanoutInfo:
    """What every sibling of a fan-out is told beyond its chunk."""

    fanout_id: str | None = None  # the ledger's key; None: no ledger, siblings do not claim
    results_inline: bool = True  # False: siblings keep per-item results in the ledger only


def chunk_sizes(n_items: int, workers: int, configured: int = 0) -> list[int]:
    """Sizes of consecutive chunks. CHUNK_SIZE > 0: all that size. Otherwise guided ("factoring"):
    each chunk takes 1/(1.5·workers) of the items still unassigned, so early chunks are big (few
    sibling round trips, each costing the SDK's post-job pause) and the last ones are single
    items that even out the finish (a slow chunk cannot hold the rest). 1.5 beat 1 and 2 in a
    simulation with the SDK's pause (bench/bench_fanout.py measures the real thing)."""
    if n_items < 1 or workers < 1:
        raise ValueError(f"need items and workers, got {n_items} items, {workers} workers")
    sizes: list[int] = []
    left = n_items
    while left > 0:
        size = configured if configured > 0 else -(-2 * left // (3 * workers))
        sizes.append(min(size, left))
        left -= sizes[-1]
    return sizes


def item_order(n_items: int, order: str) -> list[int]:
    """The positions of the items in the order they are dealt into chunks. `contiguous`: input
    order. `interleaved`: a fixed pseudo-random permutation, so items that sit together in the
    input (one slow site's pages, a sorted list) spread over many chunks instead of forming one
    slow chunk; with contiguous chunks such a run can double the makespan (bench/bench_fanout.py,
    clustered order). Results are merged back in input order either way."""
    positions = list(range(n_items))
    if order == "interleaved":
        random.Random(INTERLEAVE_SEED).shuffle(positions)
    elif order != "contiguous":
        raise ValueError(f"chunk order must be 'interleaved' or 'contiguous', got {order!r}")
    return positions


def chunk_job(parsed: ParsedJob, sizes: list[int], order: str = "contiguous") -> list[Chunk]:
    """Deal the job's items into chunks of `sizes` (which must add up to the item count), taking
    them in `item_order(order)`; within a chunk, items keep their input order."""
    raw = parsed.envelope.items
    if sum(sizes) != len(raw) or min(sizes) < 1:
        raise ValueError(f"chunk sizes {sizes} do not cover {len(raw)} items")
    dealt = item_order(len(raw), order)
    chunks, start = [], 0
    for i, size in enumerate(sizes):
        positions = sorted(dealt[start : start + size])
        chunks.append(
            Chunk(i, positions, [raw[p] for p in positions], [parsed.items[p] for p in positions])
        )
        start += size
    return chunks


def ref_chunks(refs: list[ChunkRef]) -> list[Chunk]:
    """The chunks of an `items_from` job, one per planned (contiguous) range of rows."""
    return [Chunk(i, range(ref.start, ref.stop), ref=ref) for i, ref in enumerate(refs)]


def _sibling_info(
    parsed: ParsedJob,
    chunk: Chunk,
    return_records: bool,
    deadline: Deadline | None = None,
    fanout: FanoutInfo | None = None,
) -> SiblingInfo:
    fanout = fanout or FanoutInfo()
    return SiblingInfo(
        parent_id=parsed.job_id,
        chunk=chunk.index,
        attempt=chunk.attempt,
        key=chunk.key(parsed.job_id),
        return_records=return_records,
        deadline_at=None if deadline is None else round(deadline.epoch_s(), 3),
        protocol=SIBLING_PROTOCOL,
        fanout_id=fanout.fanout_id,
        ref=chunk.ref,
        results_inline=fanout.results_inline,
    )


def sibling_input(
    parsed: ParsedJob,
    chunk: Chunk,
    *,
    return_records: bool,
    cleanup: bool,
    deadline: Deadline | None = None,
    fanout: FanoutInfo | None = None,
) -> dict[str, Any]:
    """The job input of the sibling that runs `chunk`: the same envelope, mode worker, its items
    (or, by reference, `items_from` and its rows as `sibling.ref`), the fan-out's ledger key and
    the job's `deadline` (as `sibling.deadline_at`), past which the sibling does not run."""
    exclude = {"sibling", "workers", "items", "run_key"}
    if parsed.envelope.items_from is None:
        exclude.add("items_from")  # a worker older than items_from refuses the field
    data = parsed.envelope.model_dump(mode="json", exclude=exclude)
    info = _sibling_info(parsed, chunk, return_records, deadline, fanout)
    data.update(
        mode="worker",
        items=chunk.raw,
        cleanup=cleanup,
        sibling=info.model_dump(mode="json", exclude={"first_index"}, exclude_none=True),
    )
    return data


def local_job(
    parsed: ParsedJob, chunk: Chunk, *, return_records: bool, fanout: FanoutInfo | None = None
) -> ParsedJob:
    """The ParsedJob of a local run of `chunk`: what its sibling would get (attempt, no cleanup;
    for a chunk by reference, no items yet: `podfleet.worker.materialize` reads its rows)."""
    info = _sibling_info(parsed, chunk, return_records, fanout=fanout)
    env = parsed.envelope.model_copy(update={"sibling": info, "cleanup": False})
    if chunk.ref is not None:
        return dataclasses.replace(parsed, envelope=env, items=[], item_ids=())
    ids = tuple(parsed.item_ids[p] for p in chunk.positions)
    return dataclasses.replace(parsed, envelope=env, items=list(chunk.parsed), item_ids=ids)
