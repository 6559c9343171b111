"""Read-only views of the emulated endpoint: RunPod's REST v2 worker listing and the dashboard's
snapshot. Pure functions over `EndpointState`, called on its event loop."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from podfleet.emulator.jobs import JobRecord, JobStatus

if TYPE_CHECKING:
    from podfleet.emulator.state import EndpointState

__all__ = ["snapshot", "workers_listing"]

_V2_STATES = ("running", "idle", "initializing", "throttled", "unhealthy")


def _iso(wall_s: float) -> str:
    return dt.datetime.fromtimestamp(wall_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workers_listing(state: EndpointState) -> dict[str, Any]:
    """GET /v2/serverless/{id}/workers as RunPod's REST v2 `ListEndpointWorkersResponse`
    (runpod/docs api-reference-v2/openapi.json), plus podfleet's own fields (restarts,
    lastExit, jobs) that a real endpoint does not send."""
    now = time.monotonic()
    summary = dict.fromkeys(_V2_STATES, 0)
    rows = []
    for w in state.workers.values():
        if not w.active:
            continue  # scaled down: RunPod lists only active workers
        st = state.worker_state(w)
        summary[st] += 1
        rows.append(
            {
                "id": w.id,
                "status": st.upper(),
                "isStale": w.version != state.version,
                "version": w.version,
                "gpuCount": 0,
                "image": "local emulator",
                "uptimeSeconds": int(now - w.started_at) if w.alive else None,
                "gpuTypeId": None,
                "dataCenterId": "LOCAL",
                "startedAt": _iso(w.started_wall) if w.alive else None,
                "restarts": w.restarts,
                "lastExit": w.last_exit,
                "jobs": sorted(w.jobs),
            }
        )
    summary["total"] = len(rows)
    return {"endpointVersion": state.version, "summary": summary, "workers": rows}


def _job_row(job: JobRecord, now: float) -> dict[str, Any]:
    delay_s = None
    if job.started_at is not None:
        delay_s = job.started_at - job.created_at
    elif not job.status.is_final():
        delay_s = now - job.created_at
    execution_s = job.execution_s(now)
    error = job.error if isinstance(job.error, str) or job.error is None else repr(job.error)
    return {
        "id": job.id,
        "status": str(job.status),
        "worker_id": job.worker_id,
        "progress": job.progress if job.status is JobStatus.IN_PROGRESS else None,
        "delay_s": None if delay_s is None else round(delay_s, 2),
        "execution_s": None if execution_s is None else round(execution_s, 2),
        "parent_id": job.parent_id,
        "chunk": job.chunk,
        "retries": job.retries,
        "error": None if error is None else error[:200],
        "created_at": job.created_wall,
    }


def _request_rates(state: EndpointState) -> dict[str, Any]:
    """Totals per operation, and requests/s over the last 10 s (the dashboard's numbers)."""
    recent = state.requests.stats(since=time.time() - 10)
    return {
        op: {"total": state.requests.totals[op], "per_s_10s": row["mean_per_s"]}
        for op, row in recent.items()
        if isinstance(row, dict) and op != "all"
    }


def snapshot(state: EndpointState, *, max_jobs: int = 200) -> dict[str, Any]:
    """Everything the dashboard shows, newest jobs first (at most `max_jobs` top-level ones;
    every sibling of a shown coordinator is kept under it)."""
    now = time.monotonic()
    listing = workers_listing(state)
    by_id = {w["id"]: w for w in listing["workers"]}
    workers = []
    for w in state.workers.values():
        if not w.active:
            continue
        row = by_id[w.id]
        workers.append(
            {
                "id": w.id,
                "state": row["status"].lower(),
                "stale": row["isStale"],
                "jobs": sorted(w.jobs),
                "restarts": w.restarts,
                "last_exit": w.last_exit,
                "jobs_done": w.jobs_done,
                "uptime_s": row["uptimeSeconds"],
                "billed_s": round(w.billed_total_s(now), 1),
            }
        )
    rows = [_job_row(j, now) for j in state.jobs.values()]
    siblings: dict[str, list[dict[str, Any]]] = {}
    top = []
    known = set(state.jobs)
    for row in rows:
        parent = row["parent_id"]
        if parent and parent in known:
            siblings.setdefault(parent, []).append(row)
        else:
            top.append(row)
    top.sort(key=lambda r: r["created_at"], reverse=True)
    top = top[:max_jobs]
    for row in top:
        kids = siblings.get(row["id"], [])
        kids.sort(key=lambda r: (r["chunk"] is None, r["chunk"] or 0, r["created_at"]))
        row["siblings"] = kids
        row["billed_s"] = round(
            (row["execution_s"] or 0) + sum(k["execution_s"] or 0 for k in kids), 2
        )
    health = state.health()
    return {
        "endpoint_id": state.config.endpoint_id,
        "version": state.version,
        "time": time.time(),
        "queue": {"depth": health["jobs"]["inQueue"], "in_progress": health["jobs"]["inProgress"]},
        "counts": health["jobs"],
        "summary": listing["summary"],
        "workers": workers,
        "jobs": top,
        "errors": list(state.errors)[-20:][::-1],
        "billing": health["billing"],
        "requests": _request_rates(state),
        "scaling": {
            "workers_min": state.config.workers_min
            if state.config.workers_min is not None
            else state.config.workers,
            "workers_max": state.config.workers,
            "idle_timeout_s": state.config.idle_timeout_s,
            "cap": state.faults.max_workers,
        },
    }
