"""The one place where typed results become RunPod's output dict."""

from __future__ import annotations

from typing import Any

from podfleet.envelope import ParsedJob
from podfleet.pipeline.runner import PipelineRun
from podfleet.pipeline.stage import ItemError

__all__ = ["error_output", "job_output"]


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
    results: list[dict[str, Any] | None],
    errors: list[ItemError],
    timings_s: dict[str, float],
    load: dict[str, Any] | None = None,
    fanout: dict[str, Any] | None = None,
    records: list[dict[str, Any] | None] | None = None,
    missing: list[str] | None = None,
) -> dict[str, Any]:
    """The seeds' shape (`ok, date, trigger, cleanup, workers, duration_sec`) plus our fields."""
    env = parsed.envelope
    out: dict[str, Any] = {
        "ok": not errors and not missing,
        "date": env.date.isoformat(),
        "trigger": env.trigger,
        "cleanup": env.cleanup,
        "workers": workers,
        "duration_sec": round(duration_s, 3),
        "pipeline": parsed.pipeline.name,
        "mode": mode,
        "items": len(results),
        "succeeded": sum(r is not None for r in results),
        "results": results,
        "errors": [e.to_dict() for e in errors],
        "timings_s": timings_s,
        "load": load,
    }
    if fanout is not None:
        out["fanout"] = fanout
    if missing:
        out["missing"] = missing
    if records is not None:
        out["records"] = records
    return out


def run_output(
    parsed: ParsedJob, run: PipelineRun, *, mode: str, workers: int, duration_s: float
) -> dict[str, Any]:
    return job_output(
        parsed,
        mode=mode,
        workers=workers,
        duration_s=duration_s,
        results=run.results,
        errors=run.errors,
        timings_s=run.timings_s,
        load=run.load_stats,
        records=run.records
        if parsed.envelope.sibling and parsed.envelope.sibling.return_records
        else None,
    )
