"""Chunks of a coordinator job's items and the sibling job input built from one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from handler.envelope import ParsedJob, SiblingInfo

__all__ = ["Chunk", "chunk_job", "local_job", "sibling_input"]


@dataclass
class Chunk:
    """A contiguous slice of the job's items: `items[first : first + len(raw)]`."""

    index: int
    first: int
    raw: list[dict[str, Any]]  # the items as the job gave them (what a sibling receives)
    parsed: list[BaseModel]  # the same items, validated (what a local run uses)
    attempt: int = 0
    not_before_s: float = 0.0  # monotonic time before which a retry must not start
    last_error: str = ""

    @property
    def size(self) -> int:
        return len(self.raw)

    def key(self, parent_id: str) -> str:
        return f"{parent_id}:{self.index}"


def chunk_job(parsed: ParsedJob, chunk_size: int) -> list[Chunk]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    raw = parsed.envelope.items
    return [
        Chunk(i, first, raw[first : first + chunk_size], parsed.items[first : first + chunk_size])
        for i, first in enumerate(range(0, len(raw), chunk_size))
    ]


def _sibling_info(parsed: ParsedJob, chunk: Chunk, return_records: bool) -> SiblingInfo:
    return SiblingInfo(
        parent_id=parsed.job_id,
        chunk=chunk.index,
        attempt=chunk.attempt,
        key=chunk.key(parsed.job_id),
        return_records=return_records,
        first_index=chunk.first,
    )


def sibling_input(
    parsed: ParsedJob, chunk: Chunk, *, return_records: bool, cleanup: bool
) -> dict[str, Any]:
    """The job input of the sibling that runs `chunk`: the same envelope, mode worker, its items."""
    data = parsed.envelope.model_dump(mode="json", exclude={"sibling", "workers", "items"})
    data.update(
        mode="worker",
        items=chunk.raw,
        cleanup=cleanup,
        sibling=_sibling_info(parsed, chunk, return_records).model_dump(mode="json"),
    )
    return data


def local_job(parsed: ParsedJob, chunk: Chunk, *, return_records: bool) -> ParsedJob:
    """The ParsedJob of a local run of `chunk`: what its sibling would get (attempt, no cleanup)."""
    env = parsed.envelope.model_copy(
        update={"sibling": _sibling_info(parsed, chunk, return_records), "cleanup": False}
    )
    return dataclasses.replace(parsed, envelope=env, items=list(chunk.parsed))
