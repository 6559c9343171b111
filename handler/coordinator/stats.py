"""The `fanout` statistics a coordinator job reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FanoutStats"]


@dataclass
class FanoutStats:
    chunks: int = 0
    chunk_size: int = 0  # the largest chunk (guided plans shrink towards 1)
    chunk_plan: str = "guided"  # or "fixed" (CHUNK_SIZE set)
    siblings_submitted: int = 0
    retries: int = 0  # chunk attempts after a failed, timed-out, lost or cancelled-by-others one
    chunks_local: int = 0  # chunks the coordinator ran itself
    taken_back: int = 0  # queued siblings cancelled and run locally instead
    max_in_flight: int = 0
    cancelled: int = 0  # siblings cancelled by us (take-backs, deadline, job cancellation)
    lost: int = 0  # siblings the API no longer knew (404)
    duplicates_ignored: int = 0
    chunks_failed: int = 0  # chunks whose items were reported failed after the last retry
    submit_errors: int = 0  # /run calls that failed after the client's own retries
    status_errors: int = 0  # status rounds that failed after the client's own retries
    submissions_stopped: str | None = None  # why the coordinator stopped submitting (401, ...)
    # The chunk ledger (docs/coordinator.md, "Resume"); fanout_id None: no ledger.
    fanout_id: str | None = None
    resumed: bool = False  # the fan-out was in the ledger: this run picked it up
    chunks_reused: int = 0  # chunks done before this run, merged from their stored outcomes
    siblings_adopted: int = 0  # siblings polled by a recorded id (resume, duplicate's holder)
    skipped_done: int = 0  # siblings that found their chunk done and did no work
    skipped_duplicate: int = 0  # ... found their attempt held by another sibling
    skipped_superseded: int = 0  # ... found a later attempt of their chunk
    duplicates_refused: int = 0  # claims the ledger refused over the fan-out (its summary)
    protocol_refusals: int = 0  # tries a worker refused for `sibling.protocol` (retried)
    errors_total: int = 0  # item errors, including those past the output's first 1,000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
