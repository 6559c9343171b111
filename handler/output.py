"""The job output: one typed model that a worker serialises and a coordinator parses back from its
siblings' outputs, and the one place where results become RunPod's output dict."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from podfleet.envelope import ParsedJob
from podfleet.pipeline.runner import PipelineRun
from podfleet.pipeline.stage import ItemError
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JobOutput", "error_output", "job_output", "run_output"]

Slot = dict[str, Any] | None  # one item's result (or record); None when the item failed


class JobOutput(BaseModel):
    """A finished job's output. The seeds' fields (`ok, date, trigger, cleanup, workers,
    duration_sec`) plus ours; `fanout`, `missing`, `records` and the ledger's fields appear only
    when set."""

    model_config = ConfigDict(extra="ignore")  # an older or newer worker may send more

    ok: bool = False
    date: dt.date | None = None
    trigger: str = ""
    cleanup: bool = False
    workers: int = 1
    duration_sec: float = 0.0
    pipeline: str = ""
    mode: str = "worker"
    items: int = 0
    succeeded: int = 0
    results: list[Slot]
    errors: list[ItemError] = Field(default_factory=list)
    timings_s: dict[str, float] = Field(default_factory=dict)
    load: dict[str, Any] | None = None
    fanout: dict[str, Any] | None = None
    missing: list[str] = Field(default_factory=list)
    records: list[Slot] | None = None
    # A sibling that did no work because the chunk ledger said so: "done" (the chunk has its
    # outcome), "duplicate" (another sibling holds this attempt: `duplicate_of`), "superseded"
    # (a later attempt exists). Its `results` are empty.
    skipped: str | None = None
    duplicate_of: str | None = None
    # Where the per-item results are when the output does not carry them (items by reference):
    # {"ledger": table, "fanout_id": ..., "database": the URL without its password}.
    results_at: dict[str, Any] | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "fanout",
        "missing",
        "records",
        "skipped",
        "duplicate_of",
        "results_at",
    )

    def to_output(self) -> dict[str, Any]:
        """RunPod's output dict (JSON-able), in the documented shape."""
        out = self.model_dump(mode="json", exclude=set(self._OPTIONAL))
        for name in self._OPTIONAL:
            value = getattr(self, name)
            if value is not None and value != []:
                out[name] = value
        return out


def error_output(message: str, *, refresh_worker: bool = False) -> dict[str, Any]:
    """A failed job: RunPod marks it FAILED and shows `error` (a plain string, never JSON)."""
    out: dict[str, Any] = {"error": message}
    if refresh_worker:
        out["refresh_worker"] = True
    return out


def job_output(
    parsed: ParsedJob,
    *,
    mode: str,
    workers: int,
    duration_s: float,
    results: list[Slot],
    errors: list[ItemError],
    timings_s: dict[str, float],
    load: dict[str, Any] | None = None,
    fanout: dict[str, Any] | None = None,
    records: list[Slot] | None = None,
    missing: list[str] | None = None,
) -> JobOutput:
    env = parsed.envelope
    return JobOutput(
        ok=not errors and not missing,
        date=env.date,
        trigger=env.trigger,
        cleanup=env.cleanup,
        workers=workers,
        duration_sec=round(duration_s, 3),
        pipeline=parsed.pipeline.name,
        mode=mode,
        items=len(results),
        succeeded=sum(r is not None for r in results),
        results=results,
        errors=list(errors),
        timings_s=timings_s,
        load=load,
        fanout=fanout,
        missing=missing or [],
        records=records,
    )


def run_output(
    parsed: ParsedJob, run: PipelineRun, *, mode: str, workers: int, duration_s: float
) -> JobOutput:
    """A run here as a job output; records travel only when this job returns them."""
    sibling = parsed.envelope.sibling
    return job_output(
        parsed,
        mode=mode,
        workers=workers,
        duration_s=duration_s,
        results=run.results,
        errors=run.errors,
        timings_s=run.timings_s,
        load=run.load_stats,
        records=run.records if sibling and sibling.return_records else None,
    )
