"""`podfleet health`, `workers` and `doctor`: tables for people, JSON for scripts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from podfleet.cli.common import EXIT_FAILED, EXIT_OK, UsageError, client_from, print_json
from rich.console import Console
from rich.table import Table

__all__ = ["cmd_doctor", "cmd_health", "cmd_workers"]

_JOB_ROWS = (
    ("inQueue", "queued, waiting for a worker"),
    ("inProgress", "running on a worker"),
    ("completed", "completed"),
    ("failed", "failed or timed out"),
    ("retried", "re-queued after a worker died"),
)
_WORKER_ROWS = (
    ("idle", "ready, waiting for a job"),
    ("running", "running a job"),
    ("initializing", "starting, not yet taking jobs"),
    ("throttled", "no capacity: cannot start"),
    ("unhealthy", "crash-looping or failing checks"),
)


def _console() -> Console:
    return Console(highlight=False)


def _health_tables(raw: dict[str, Any]) -> list[Table]:
    jobs, workers = raw.get("jobs") or {}, raw.get("workers") or {}
    t_jobs = Table(title="jobs", title_justify="left")
    t_jobs.add_column("jobs", justify="right")
    t_jobs.add_column("state")
    t_jobs.add_column("meaning", style="dim")
    for key, label in _JOB_ROWS:
        if key in jobs:
            t_jobs.add_row(str(jobs[key]), key, label)
    t_workers = Table(title="workers", title_justify="left")
    t_workers.add_column("workers", justify="right")
    t_workers.add_column("state")
    t_workers.add_column("meaning", style="dim")
    for key, label in _WORKER_ROWS:
        if key in workers:
            style = "red" if key in ("throttled", "unhealthy") and workers[key] else None
            t_workers.add_row(str(workers[key]), key, label, style=style)
    tables = [t_jobs, t_workers]
    billing = raw.get("billing")
    if isinstance(billing, dict):
        t_bill = Table(title="billed (emulator)", title_justify="left")
        t_bill.add_column("worker-seconds", justify="right")
        t_bill.add_column("running s", justify="right")
        t_bill.add_column("idle s", justify="right")
        t_bill.add_row(
            *(
                f"{billing.get(k, 0):.1f}"
                for k in ("workerSeconds", "runningSeconds", "idleSeconds")
            )
        )
        tables.append(t_bill)
    return tables


async def cmd_health(args: argparse.Namespace) -> int:
    client, _ = client_from(args)
    async with client:
        health = await client.health()
    raw = health.raw or health.model_dump(exclude={"raw"})
    if args.json:
        print_json(raw)
        return EXIT_OK
    console = _console()
    console.print(f"endpoint [bold]{client.endpoint_id}[/bold] at {client.base_url}")
    for table in _health_tables(raw):
        console.print(table)
    return EXIT_OK


async def cmd_workers(args: argparse.Namespace) -> int:
    client, _ = client_from(args)
    async with client:
        listing = await client.workers()
    if args.json:
        print_json(listing.raw)
        return EXIT_OK
    table = Table(title=f"workers (endpoint version {listing.endpoint_version})")
    for name in ("id", "status", "stale", "uptime", "restarts", "last exit", "jobs"):
        table.add_column(name)
    for w in listing.workers:
        table.add_row(
            w.id,
            str(w.status),
            "stale" if w.is_stale else "",
            "" if w.uptime_s is None else f"{w.uptime_s:g}s",
            "" if w.restarts is None else str(w.restarts),
            w.last_exit or "",
            ", ".join(w.jobs or []),
        )
    _console().print(table)
    return EXIT_OK


def _probe_input(value: str | None) -> Any:
    if value is None:
        return None
    if value == "synthetic":  # a one-item job of podfleet's own synthetic pipeline
        return {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "doctor-probe"}]}
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--probe: not JSON: {exc}") from None


async def cmd_doctor(args: argparse.Namespace) -> int:
    from podfleet.doctor import diagnose

    if args.sample < 0 or args.stuck_after <= 0:
        raise UsageError("--sample must be >= 0 and --stuck-after > 0")
    probe = _probe_input(args.probe)
    client, _ = client_from(args)
    async with client:
        report = await diagnose(
            client,
            sample_s=args.sample,
            stuck_after_s=args.stuck_after,
            probe=probe,
            probe_timeout_s=args.probe_timeout,
        )
    if args.json:
        print_json(report.to_dict())
        return EXIT_OK if report.healthy else EXIT_FAILED
    console = _console()
    console.print(f"endpoint [bold]{report.endpoint}[/bold]")
    if report.health:
        for table in _health_tables(report.health):
            console.print(table)
    if report.healthy:
        probe_note = f"; probe job {report.probe['id']} completed" if report.probe else ""
        console.print(f"[green]healthy[/green]: no problem found{probe_note}")
        return EXIT_OK
    for f in report.findings:
        colour = "red" if f.severity == "error" else "yellow"
        console.print(f"[{colour}]{f.severity.upper()} {f.code}[/{colour}]: {f.title}")
        for line in f.evidence:
            console.print(f"    evidence: {line}", markup=False, soft_wrap=True)
        console.print(f"    fix: {f.fix}", markup=False, soft_wrap=True)
    return EXIT_FAILED
