"""A fan-out's results and errors read back from the chunk ledger in input order, with bounded
memory: chunks of contiguous positions (items by reference, always) stream a few outcomes at a
time; interleaved inline chunks (bounded by RunPod's request size) fill per-position slots."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from podfleet.pipeline.store.ledger import ChunkRow, Ledger

__all__ = ["iter_errors", "iter_results"]

STREAM_BATCH = 16  # chunk outcomes held at once

Span = range | list[int]


def _span(row: ChunkRow) -> Span:
    """A chunk's input positions: a range when contiguous (always for a ref)."""
    if row.ref is not None:
        return range(int(row.ref["start"]), int(row.ref["stop"]))
    positions = row.positions or []
    if positions and positions == list(range(positions[0], positions[-1] + 1)):
        return range(positions[0], positions[-1] + 1)
    return positions


def _first(span: Span) -> int:
    return span[0] if isinstance(span, range) else min(span)


def _last(span: Span) -> int:
    return span[-1] if isinstance(span, range) else max(span)


def _spans(ledger: Ledger, fanout_id: str) -> tuple[int, list[tuple[int, Span]]]:
    """(the fan-out's item count, (chunk, positions) ordered by first position)."""
    info = ledger.fanout(fanout_id)
    if info is None:
        raise KeyError(f"no fan-out {fanout_id!r} in the ledger")
    spans = [(r.chunk, _span(r)) for r in ledger.rows(fanout_id)]
    spans = [(c, s) for c, s in spans if len(s)]
    spans.sort(key=lambda cs: (_first(cs[1]), cs[0]))
    return int(info["items"]), spans


def _with_outcomes(
    ledger: Ledger, fanout_id: str, spans: list[tuple[int, Span]]
) -> Iterator[tuple[Span, dict[str, Any]]]:
    """(positions, outcome or {}) in `spans` order, STREAM_BATCH outcomes loaded at a time."""
    for i in range(0, len(spans), STREAM_BATCH):
        group = spans[i : i + STREAM_BATCH]
        found = ledger.outcomes(fanout_id, [c for c, _ in group])
        for chunk, span in group:
            yield span, found.get(chunk) or {}


def _slot(results: list[Any], i: int) -> dict[str, Any] | None:
    return results[i] if i < len(results) else None


def iter_results(ledger: Ledger, fanout_id: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(input position, result or None) for every position 0..items-1, in input order.

    A chunk's `results[i]` is the result of its i-th position. Positions no chunk holds, chunks
    without an outcome yet and failed items are None."""
    items, spans = _spans(ledger, fanout_id)
    contiguous = all(isinstance(s, range) for _, s in spans) and all(
        _last(a) < _first(b) for (_, a), (_, b) in pairwise(spans)
    )
    if not contiguous:
        slots: list[dict[str, Any] | None] = [None] * max(
            [items, *(_last(s) + 1 for _, s in spans)]
        )
        for span, outcome in _with_outcomes(ledger, fanout_id, spans):
            results = outcome.get("results") or []
            for i, pos in enumerate(span):
                slots[pos] = _slot(results, i)
        yield from enumerate(slots)
        return
    pos = 0
    for span, outcome in _with_outcomes(ledger, fanout_id, spans):
        while pos < _first(span):  # positions no chunk holds
            yield pos, None
            pos += 1
        results = outcome.get("results") or []
        for i, p in enumerate(span):
            yield p, _slot(results, i)
        pos = _last(span) + 1
    while pos < items:
        yield pos, None
        pos += 1


def iter_errors(ledger: Ledger, fanout_id: str) -> Iterator[dict[str, Any]]:
    """Every chunk's item errors (as the chunk's outcome lists them), chunks in input order."""
    _items, spans = _spans(ledger, fanout_id)
    for _, outcome in _with_outcomes(ledger, fanout_id, spans):
        yield from outcome.get("errors") or []
