"""Merging chunk results into one slot per item, in input order; duplicates ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podfleet.coordinator.chunks import Chunk
from podfleet.pipeline.stage import ItemError

__all__ = ["ChunkResult", "MalformedOutput", "Merger", "parse_sibling_output"]


class MalformedOutput(ValueError):
    """A sibling's output does not have our worker output's shape."""


@dataclass
class ChunkResult:
    results: list[dict[str, Any] | None]
    errors: list[ItemError]
    records: list[dict[str, Any] | None] | None = None
    load: dict[str, Any] | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


def parse_sibling_output(output: Any, chunk: Chunk, *, want_records: bool) -> ChunkResult:
    """Validate a COMPLETED sibling's output against the chunk it was given."""
    if not isinstance(output, dict) or not isinstance(output.get("results"), list):
        raise MalformedOutput(f"chunk {chunk.index}: sibling output has no results list")
    results = output["results"]
    if len(results) != chunk.size:
        raise MalformedOutput(f"chunk {chunk.index}: {len(results)} results for {chunk.size} items")
    errors = []
    for e in output.get("errors") or []:
        if not isinstance(e, dict) or "item_id" not in e:
            raise MalformedOutput(f"chunk {chunk.index}: malformed error entry {e!r:.100}")
        errors.append(
            ItemError(
                str(e["item_id"]),
                str(e.get("stage", "")),
                str(e.get("message", "")),
                bool(e.get("retryable", False)),
            )
        )
    records = output.get("records")
    if want_records and (not isinstance(records, list) or len(records) != chunk.size):
        raise MalformedOutput(f"chunk {chunk.index}: sibling returned no records")
    timings = output.get("timings_s") if isinstance(output.get("timings_s"), dict) else {}
    load = output.get("load") if isinstance(output.get("load"), dict) else None
    return ChunkResult(results, errors, records if want_records else None, load, timings)


class Merger:
    """One slot per item. The first result of a chunk wins; a later one is a duplicate."""

    def __init__(self, item_ids: list[str], *, keep_records: bool):
        self.item_ids = item_ids
        self.results: list[dict[str, Any] | None] = [None] * len(item_ids)
        self.records: list[dict[str, Any] | None] | None = (
            [None] * len(item_ids) if keep_records else None
        )
        self.errors: dict[str, ItemError] = {}
        self.finished: set[int] = set()  # chunk indexes with a final outcome
        self.loads: list[dict[str, Any]] = []
        self.timings_s: dict[str, float] = {}

    def accept(self, chunk: Chunk, result: ChunkResult) -> bool:
        """Store a chunk's outcome; False (and nothing changes) if it already has one."""
        if chunk.index in self.finished:
            return False
        self.finished.add(chunk.index)
        ids = {self.item_ids[p] for p in chunk.positions}
        for offset, value in enumerate(result.results):
            self.results[chunk.positions[offset]] = value
            if self.records is not None and result.records is not None:
                self.records[chunk.positions[offset]] = result.records[offset]
        for err in result.errors:
            if err.item_id in ids:
                self.errors.setdefault(err.item_id, err)
        if result.load:
            self.loads.append(result.load)
        for stage, seconds in result.timings_s.items():
            if isinstance(seconds, int | float):
                self.timings_s[stage] = round(self.timings_s.get(stage, 0.0) + seconds, 4)
        return True

    def fail(self, chunk: Chunk, stage: str, message: str, *, retryable: bool = True) -> bool:
        """Every item of the chunk failed with `message` (retries exhausted, or deadline)."""
        if chunk.index in self.finished:
            return False
        self.finished.add(chunk.index)
        for item_id in (self.item_ids[p] for p in chunk.positions):
            self.errors.setdefault(item_id, ItemError(item_id, stage, message, retryable))
        return True

    @property
    def items_done(self) -> int:
        """Items with a final outcome (a result or an error)."""
        errors = self.errors
        return sum(
            1 for i, r in enumerate(self.results) if r is not None or self.item_ids[i] in errors
        )

    def ordered_errors(self) -> list[ItemError]:
        order = {item_id: i for i, item_id in enumerate(self.item_ids)}
        return sorted(self.errors.values(), key=lambda e: order.get(e.item_id, len(order)))

    def load_summary(self) -> dict[str, Any] | None:
        """Sibling load stats summed (counts) over chunks."""
        if not self.loads:
            return None
        out: dict[str, Any] = {}
        for stats in self.loads:
            for k, v in stats.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
                else:
                    out.setdefault(k, v)
        return out
