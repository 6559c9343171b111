"""Merging chunk results into one slot per item, in input order; duplicates ignored."""

from __future__ import annotations

from typing import Any

from podfleet.coordinator.chunks import Chunk
from podfleet.output import JobOutput
from podfleet.pipeline.stage import ItemError
from pydantic import ValidationError

__all__ = ["MalformedOutput", "Merger", "add_timings", "parse_sibling_output", "sum_loads"]


class MalformedOutput(ValueError):
    """A sibling's output is no job output, or not one for the chunk it was given."""


def parse_sibling_output(
    output: Any, chunk: Chunk, *, want_records: bool, results_inline: bool = True
) -> JobOutput:
    """A COMPLETED sibling's output, validated as a `JobOutput` and against the chunk it was given.
    Raises `MalformedOutput` (from the model's `ValidationError` when it is no job output),
    which the scheduler counts as a failed attempt. A skipped sibling's output (no work: the
    ledger said so) is returned as it is; without `results_inline` (a big `items_from` job) the
    results may stay in the ledger: `results` empty, `items` the chunk's size."""
    try:
        out = JobOutput.model_validate(output)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "output"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MalformedOutput(
            f"chunk {chunk.index}: sibling output is no job output: {where}: {first['msg']}{more}"
        ) from exc
    if out.skipped is not None:
        return out
    by_ref = not results_inline and not out.results and out.items == chunk.size
    if len(out.results) != chunk.size and not by_ref:
        raise MalformedOutput(
            f"chunk {chunk.index}: {len(out.results)} results for {chunk.size} items"
        )
    if want_records and (out.records is None or len(out.records) != chunk.size):
        raise MalformedOutput(f"chunk {chunk.index}: sibling returned no records")
    if not want_records:
        out.records = None
    return out


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

    def accept(self, chunk: Chunk, result: JobOutput) -> bool:
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
        add_timings(self.timings_s, result.timings_s)
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
        return sum_loads(self.loads)


def add_timings(total_s: dict[str, float], timings_s: dict[str, float]) -> None:
    for stage, seconds in timings_s.items():
        total_s[stage] = round(total_s.get(stage, 0.0) + seconds, 4)


def sum_loads(loads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Sibling load stats summed (counts) over chunks."""
    if not loads:
        return None
    out: dict[str, Any] = {}
    for stats in loads:
        for k, v in stats.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
            else:
                out.setdefault(k, v)
    return out
