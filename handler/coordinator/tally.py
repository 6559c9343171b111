"""The bounded merger of an `items_from` job: counts and the first errors, not a slot per item.

Its chunks are contiguous ranges of rows, so chunk order is input order: errors are kept per
chunk and, past `MAX_ERRORS`, those of the latest chunks are dropped (the total is counted).
Per-item results are kept only when the job returns them inline (INLINE_RESULTS_MAX_ITEMS);
otherwise they stay in the ledger (`podfleet db results FANOUT_ID`)."""

from __future__ import annotations

from typing import Any

from podfleet.coordinator.chunks import Chunk
from podfleet.coordinator.merge import add_timings, sum_loads
from podfleet.output import JobOutput
from podfleet.pipeline.stage import ItemError

__all__ = ["MAX_ERRORS", "Tally", "position_id"]

MAX_ERRORS = 1000  # errors an output lists (and `missing` ids); the total is in the stats


def position_id(position: int) -> str:
    """The id of an item known only by its position in `items_from`."""
    return f"#{position}"


class Tally:
    """The `Merger` interface (accept, fail, finished, items_done, ...) in memory O(chunks)."""

    def __init__(self, n_items: int, *, keep_results: bool):
        self.n_items = n_items
        self.results: list[dict[str, Any] | None] = [None] * n_items if keep_results else []
        self.records: list[dict[str, Any] | None] | None = None
        self.finished: set[int] = set()
        self.items_done = 0
        self.succeeded = 0
        self.errors_total = 0
        self._errors: dict[int, list[ItemError]] = {}  # chunk index → its first errors
        self._kept = 0
        self.loads: list[dict[str, Any]] = []  # one per chunk that loaded: O(chunks)
        self.timings_s: dict[str, float] = {}

    @property
    def keep_results(self) -> bool:
        return len(self.results) == self.n_items and self.n_items > 0

    def _add_errors(self, chunk: Chunk, errors: list[ItemError]) -> None:
        self.errors_total += len(errors)
        if not errors:
            return
        self._errors[chunk.index] = errors[:MAX_ERRORS]
        self._kept += len(self._errors[chunk.index])
        while self._kept > MAX_ERRORS:  # drop from the chunk latest in input order
            last = max(self._errors)
            extra = self._kept - MAX_ERRORS
            kept = self._errors[last]
            if extra >= len(kept):
                del self._errors[last]
                self._kept -= len(kept)
            else:
                del kept[len(kept) - extra :]
                self._kept -= extra

    def accept(self, chunk: Chunk, result: JobOutput) -> bool:
        """Count a chunk's outcome; False (and nothing changes) if it already has one."""
        if chunk.index in self.finished:
            return False
        self.finished.add(chunk.index)
        self.items_done += chunk.size
        if result.results:
            self.succeeded += sum(r is not None for r in result.results)
            if self.keep_results:
                self.results[chunk.positions[0] : chunk.positions[0] + chunk.size] = result.results
        else:
            self.succeeded += result.succeeded
        self._add_errors(chunk, list(result.errors))
        if result.load:
            self.loads.append(result.load)
        add_timings(self.timings_s, result.timings_s)
        return True

    def fail(self, chunk: Chunk, stage: str, message: str, *, retryable: bool = True) -> bool:
        """Every item of the chunk failed with `message` (retries exhausted, or deadline)."""
        if chunk.index in self.finished:
            return False
        self.finished.add(chunk.index)
        self.items_done += chunk.size
        first = chunk.positions[: MAX_ERRORS + 1]
        errors = [ItemError(position_id(p), stage, message, retryable) for p in first]
        self._add_errors(chunk, errors)
        self.errors_total += chunk.size - len(errors)
        return True

    def ordered_errors(self) -> list[ItemError]:
        return [err for index in sorted(self._errors) for err in self._errors[index]]

    def load_summary(self) -> dict[str, Any] | None:
        return sum_loads(self.loads)
