"""`podfleet doctor`: read an endpoint's health and worker listing (and, if asked, run a probe
job), and name each problem with its evidence and its fix.

Works the same against the emulator and RunPod: it only uses the public API (`/health`, the REST
v2 worker listing, `/run` + `/status` for the probe). The emulator adds restarts and last exits
to the listing, which sharpens the crash-loop diagnosis; on RunPod those come from the logs.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from podfleet.api import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    AuthError,
    EndpointClient,
    Health,
    JobNotFound,
    WorkersListing,
    WorkerStatus,
)

__all__ = ["DoctorReport", "Finding", "diagnose"]

Severity = Literal["error", "warning"]

UNREACHABLE_FIX = (
    "start the local emulator with `podfleet emulate` (it prints the variables to export), or "
    "point RUNPOD_ENDPOINT_BASE_URL / --base-url at the right server"
)
THROTTLE_FIX = (
    "RunPod has no free GPU of the endpoint's types: add GPU types or data centers, or lower "
    "workersMax; workers also stay throttled when the image cannot be pulled (Docker Hub pull "
    "limits: move the image to GHCR), after too many restarts, or when the container fails to "
    "start or runs out of memory; restarting the endpoint clears a stuck throttle. In the "
    "emulator: a worker cap (`--max-workers`) below the worker count."
)


@dataclass
class Finding:
    code: str
    severity: Severity
    title: str
    evidence: list[str]
    fix: str


@dataclass
class DoctorReport:
    endpoint: str
    findings: list[Finding] = field(default_factory=list)
    health: dict[str, Any] | None = None
    workers: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "healthy": self.healthy,
            "findings": [asdict(f) for f in self.findings],
            "health": self.health,
            "workers": self.workers,
            "probe": self.probe,
        }


def _worker_line(w: Any) -> str:
    parts = [f"{w.id}: {w.status}"]
    if w.restarts:
        parts.append(f"{w.restarts} restarts")
    if w.last_exit:
        parts.append(f"last exit: {w.last_exit}")
    if w.uptime_s is not None:
        parts.append(f"up {w.uptime_s:g}s")
    return ", ".join(parts)


def _access_finding(exc: ApiError, endpoint: str, base_url: str) -> Finding:
    if isinstance(exc, AuthError):
        return Finding(
            "wrong-key",
            "error",
            "the API key is missing or wrong for this endpoint",
            [str(exc)],
            "set RUNPOD_API_KEY (or --api-key) to a key of this account; for `podfleet emulate "
            "--api-key KEY` use the same KEY",
        )
    if isinstance(exc, JobNotFound):
        return Finding(
            "wrong-endpoint",
            "error",
            f"endpoint {endpoint!r} not found at {base_url}",
            [str(exc)],
            "check RUNPOD_ENDPOINT_ID / --endpoint-id (the id in the endpoint's URL); the emulator "
            "prints its id at start-up",
        )
    return Finding(
        "unreachable",
        "error",
        f"cannot reach the endpoint API at {base_url}",
        [str(exc)],
        UNREACHABLE_FIX,
    )


def _worker_findings(listing: WorkersListing, stuck_after_s: float) -> list[Finding]:
    out: list[Finding] = []
    workers = listing.workers
    total = len(workers)
    throttled = listing.by_status(WorkerStatus.THROTTLED)
    serving = [w for w in workers if w.status in (WorkerStatus.RUNNING, WorkerStatus.IDLE)]
    if throttled and not serving:
        out.append(
            Finding(
                "throttled",
                "error",
                f"all {total} workers are throttled: nothing can take a job",
                [_worker_line(w) for w in throttled[:5]],
                THROTTLE_FIX,
            )
        )
    elif throttled:
        out.append(
            Finding(
                "some-throttled",
                "warning",
                f"{len(throttled)} of {total} workers are throttled",
                [_worker_line(w) for w in throttled[:5]],
                THROTTLE_FIX,
            )
        )
    unhealthy = listing.by_status(WorkerStatus.UNHEALTHY)
    looping = [w for w in unhealthy if (w.restarts or 0) > 0]
    if looping:
        out.append(
            Finding(
                "crash-looping",
                "error",
                f"{len(looping)} worker(s) crash-looping: they exit and restart",
                [_worker_line(w) for w in looping[:5]],
                "read the worker's log (the `podfleet emulate` terminal, or the endpoint's logs in "
                "RunPod's console) for the exception; run `python handler.py` locally; a handler "
                "must call runpod.serverless.start and not exit; check the start command, the "
                "image's dependencies and memory",
            )
        )
    other = [w for w in unhealthy if w not in looping]
    if other:
        out.append(
            Finding(
                "unhealthy",
                "error",
                f"{len(other)} worker(s) unhealthy: failing health checks or never ready",
                [_worker_line(w) for w in other[:5]],
                "read the worker's log; a worker that never asks for a job is stuck in start-up "
                "(model download, fitness check, a blocking import)",
            )
        )
    stuck = [
        w
        for w in listing.by_status(WorkerStatus.INITIALIZING)
        if w.uptime_s is not None and w.uptime_s >= stuck_after_s
    ]
    if stuck:
        out.append(
            Finding(
                "stuck-initializing",
                "error",
                f"{len(stuck)} worker(s) stuck initializing for over {stuck_after_s:g}s",
                [_worker_line(w) for w in stuck[:5]],
                "the worker started but never asked for a job: a slow or failing image pull (large "
                "image; Docker Hub limits: use GHCR), a model loaded or downloaded at start-up, a "
                "start-up check that hangs, or a handler that never reaches "
                "runpod.serverless.start",
            )
        )
    stale = listing.stale
    if stale:
        out.append(
            Finding(
                "stale-workers",
                "warning",
                f"{len(stale)} of {total} workers run an older release than the endpoint "
                f"(version {listing.endpoint_version})",
                [f"{w.id}: version {w.version}, {w.status}" for w in stale[:5]],
                "a rolling release replaces them as they finish their jobs; jobs meanwhile may "
                "run on the old image. If they stay, restart the workers (RunPod: the endpoint's "
                "'Refresh workers'; the emulator: restart `podfleet emulate`)",
            )
        )
    return out


def _queue_findings(first: Health, second: Health, listing: WorkersListing | None) -> list[Finding]:
    out: list[Finding] = []
    q1, q2 = first.jobs.get("inQueue", 0), second.jobs.get("inQueue", 0)
    running = second.jobs.get("inProgress", 0) + first.jobs.get("inProgress", 0)
    busy = listing.by_status(WorkerStatus.RUNNING) if listing else []
    if q2 > 0 and q2 >= q1 and running == 0 and not busy:
        states = listing.summary if listing else second.workers
        out.append(
            Finding(
                "queue-growing",
                "error",
                f"the queue is not draining: {q1} -> {q2} jobs queued and nothing running",
                [f"workers: {states}"],
                "no worker takes jobs: see the worker findings above; with workersMax 0 or every "
                "worker throttled nothing runs; `podfleet purge` empties the queue",
            )
        )
    failed = second.jobs.get("failed", 0) - first.jobs.get("failed", 0)
    completed = second.jobs.get("completed", 0) - first.jobs.get("completed", 0)
    total_failed = second.jobs.get("failed", 0)
    total_done = total_failed + second.jobs.get("completed", 0)
    if failed > 0 and completed == 0:
        out.append(
            Finding(
                "jobs-failing",
                "error",
                f"jobs are failing: {failed} failed and none completed while watching",
                [f"totals: {second.jobs}"],
                "read a failed job's error with `podfleet status JOB_ID` (or the dashboard's "
                "recent errors); a job that fails at once usually has a bad input",
            )
        )
    elif total_done >= 3 and total_failed * 2 > total_done:
        out.append(
            Finding(
                "jobs-failing",
                "warning",
                f"{total_failed} of {total_done} finished jobs failed",
                [f"totals: {second.jobs}"],
                "read a failed job's error with `podfleet status JOB_ID` (or the dashboard's "
                "recent errors)",
            )
        )
    return out


async def _probe(
    client: EndpointClient, payload: Any, timeout_s: float
) -> tuple[dict, Finding | None]:
    state = await client.run(payload)
    try:
        final = await client.wait(state.id, timeout_s=timeout_s, interval_s=0.5)
    except ApiTimeout as exc:
        last = exc.last_state.status if getattr(exc, "last_state", None) else "unknown"
        return {"id": state.id, "status": str(last)}, Finding(
            "probe-timeout",
            "error",
            f"the probe job {state.id} did not finish within {timeout_s:g}s (still {last})",
            [f"job {state.id}: {last}"],
            "IN_QUEUE: no worker takes jobs (see above); IN_PROGRESS: the handler is slow or stuck",
        )
    info = {"id": final.id, "status": str(final.status), "error": final.error}
    if final.status != "COMPLETED" or (
        isinstance(final.output, dict) and final.output.get("error")
    ):
        return info, Finding(
            "probe-failed",
            "error",
            f"the probe job {final.id} ended {final.status}",
            [str(final.error or (final.output or {}).get("error"))[:300]],
            "the handler fails on the probe input: run it locally with "
            "`python handler.py --test_input '...'`",
        )
    return info, None


async def diagnose(
    client: EndpointClient,
    *,
    sample_s: float = 3.0,
    stuck_after_s: float = 120.0,
    probe: Any = None,
    probe_timeout_s: float = 60.0,
) -> DoctorReport:
    """Diagnose `client`'s endpoint; `probe` (a job input) also runs one job through it."""
    report = DoctorReport(endpoint=f"{client.base_url}/{client.endpoint_id}")
    try:
        first = await client.health()
    except ApiError as exc:
        report.findings.append(_access_finding(exc, client.endpoint_id, client.base_url))
        return report
    listing: WorkersListing | None = None
    try:
        listing = await client.workers()
        report.workers = listing.raw
    except (ApiConnectionError, AuthError, JobNotFound):
        listing = None  # a key without REST access, or an API without the listing
    except ApiError:
        listing = None
    if listing is not None:
        report.findings.extend(_worker_findings(listing, stuck_after_s))
    if sample_s > 0:
        await asyncio.sleep(sample_s)
    second = await client.health()
    report.health = second.raw
    report.findings.extend(_queue_findings(first, second, listing))
    if probe is not None:
        report.probe, finding = await _probe(client, probe, probe_timeout_s)
        if finding is not None:
            report.findings.append(finding)
    return report
