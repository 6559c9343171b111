"""Job commands: submit, wait, stream, status, cancel, retry, purge; the live progress display.

Results go to stdout as JSON; the progress display and the account of failed items go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from podfleet.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    client_from,
    err_console,
    print_json,
    read_job,
    state_dict,
)

__all__ = [
    "cmd_job",
    "cmd_purge",
    "cmd_stream",
    "cmd_submit",
    "cmd_wait",
    "default_wait_s",
    "failed_items",
    "item_line",
]

QUEUE_ALLOWANCE_S = 60.0  # on top of the job's deadline: time it may wait for a worker


def default_wait_s(settings: Any, policy_wire: dict[str, Any] | None = None) -> float:
    """How long `--wait` waits by default: the job's own deadline (policy executionTimeout, else
    REQUEST_TIMEOUT) plus a queue allowance; not a fixed 300 s."""
    if policy_wire and isinstance(policy_wire.get("executionTimeout"), int | float):
        deadline_s = policy_wire["executionTimeout"] / 1000
    else:
        deadline_s = settings.request_timeout
    return deadline_s + QUEUE_ALLOWANCE_S


def _failed(state: Any) -> bool:
    from podfleet.api import JobStatus

    if state.status != JobStatus.COMPLETED:
        return state.status.is_terminal()
    return isinstance(state.output, dict) and state.output.get("ok") is False


def failed_items(state: Any) -> tuple[int, int | None, list[str]]:
    """(failed items, items, first error lines) of a finished podfleet job's output."""
    out: dict[str, Any] = state.output if isinstance(state.output, dict) else {}
    errors: list[Any] = out["errors"] if isinstance(out.get("errors"), list) else []
    results: list[Any] | None = out["results"] if isinstance(out.get("results"), list) else None
    total = len(results) if results is not None else out.get("items")
    lines = []
    for err in errors[:3]:
        if isinstance(err, dict):
            where = f"{err.get('item_id', '?')} ({err.get('stage', '?')})"
            lines.append(f"{where}: {str(err.get('message', ''))[:200]}")
        else:
            lines.append(str(err)[:200])
    return len(errors), total if isinstance(total, int) else None, lines


def report_ending(state: Any) -> None:
    """On stderr: why a job did not succeed (status and error, or how many items failed)."""
    console = err_console()
    from podfleet.api import JobStatus

    if state.status != JobStatus.COMPLETED:
        error = state.error if state.error is not None else "(no error message)"
        text = error if isinstance(error, str) else json.dumps(error, default=str)
        console.print(f"[red]job {state.id} {state.status}[/red]: {text[:500]}", soft_wrap=True)
        return
    n_failed, total, lines = failed_items(state)
    if n_failed:
        of = f" of {total}" if total is not None else ""
        console.print(f"[red]job {state.id}: {n_failed}{of} items failed[/red]; first errors:")
        for line in lines:
            console.print(f"  - {line}", soft_wrap=True, markup=False)
    elif isinstance(state.output, dict) and state.output.get("error"):
        console.print(f"[red]job {state.id} failed[/red]: {str(state.output['error'])[:500]}")


class ProgressView:
    """Status, a bar of items (or stages), elapsed time and failures, from the job's
    `progress_update` payloads (coordinators: items/chunks/siblings; workers: stages)."""

    def __init__(self, job_id: str):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.job_id = job_id
        self.console = err_console()
        self.t0 = time.monotonic()
        self._last_line: str | None = None
        # not a terminal (CI, a pipe, a log file): one plain line per change instead of a bar
        self.plain = not self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=self.console,
            transient=False,
            disable=self.plain,
        )
        self.task = self.progress.add_task(job_id, total=None, status="IN_QUEUE", detail=job_id)

    def update(self, state: Any) -> None:
        p = state.progress or {}
        done, total = p.get("items_done"), p.get("items_total")
        detail = [state.id]
        if "stage" in p and isinstance(p.get("stages_total"), int):
            done, total = p.get("stages_done"), p["stages_total"]
            detail.append(f"stage {p['stage']} ({p.get('items_total', '?')} items)")
        if "siblings_in_flight" in p:
            detail.append(f"siblings in flight: {p['siblings_in_flight']}")
        if p.get("items_failed"):
            detail.append(f"{p['items_failed']} failed")
        if state.terminal and isinstance(state.output, dict):
            n_failed, n_items, _ = failed_items(state)
            if n_items is not None:
                done, total = n_items - n_failed, n_items
                if n_failed:
                    detail.append(f"{n_failed} failed")
        kw: dict[str, Any] = {"status": str(state.status), "detail": "  ".join(detail)}
        if self.plain:
            count = f" {done}/{total}" if isinstance(done, int) and isinstance(total, int) else ""
            line = f"{state.status}{count}  {'  '.join(detail)}"
            if line != self._last_line:
                self._last_line = line
                elapsed = time.monotonic() - self.t0
                self.console.print(f"[{elapsed:6.1f}s] {line}", markup=False, soft_wrap=True)
            return
        if isinstance(total, int):
            kw["total"] = total
        if isinstance(done, int):
            kw["completed"] = done
        self.progress.update(self.task, **kw)


async def _wait_and_report(client: Any, job_id: str, timeout_s: float, settings: Any) -> int:
    from podfleet.api import ApiTimeout

    view = ProgressView(job_id)
    t0 = time.monotonic()
    try:
        with view.progress:
            final = await client.wait(
                job_id,
                timeout_s=timeout_s,
                interval_s=min(1.0, settings.wait_interval_s),
                on_update=view.update,
            )
    except ApiTimeout as exc:
        last = getattr(exc, "last_state", None)
        status = last.status if last is not None else "unknown"
        err_console().print(
            f"[red]job {job_id} still {status} after {time.monotonic() - t0:.0f}s[/red]; "
            f"re-attach with `podfleet wait {job_id}`"
        )
        return EXIT_FAILED
    print_json(state_dict(final))
    if _failed(final):
        report_ending(final)
        return EXIT_FAILED
    return EXIT_OK


async def cmd_submit(args: argparse.Namespace) -> int:
    from podfleet.api import Policy

    job = read_job(args.file)
    client, settings = client_from(args)
    policy = None
    wire = job.get("policy") if isinstance(job.get("policy"), dict) else None
    if wire:
        policy = Policy(
            execution_timeout_s=wire["executionTimeout"] / 1000
            if "executionTimeout" in wire
            else None,
            ttl_s=wire["ttl"] / 1000 if "ttl" in wire else None,
            low_priority=wire.get("lowPriority"),
        )
    async with client:
        state = await client.run(job["input"], policy=policy, webhook=job.get("webhook"))
        if not (args.wait or args.stream):
            print_json(state_dict(state))
            return EXIT_OK
        timeout_s = args.timeout or default_wait_s(settings, wire)
        if args.stream:
            async for chunk in client.stream(state.id, timeout_s=timeout_s):
                print(json.dumps(chunk, default=str), flush=True)
            final = await client.status(state.id)
            print_json(state_dict(final))
            if _failed(final):
                report_ending(final)
                return EXIT_FAILED
            return EXIT_OK
        return await _wait_and_report(client, state.id, timeout_s, settings)


async def cmd_wait(args: argparse.Namespace) -> int:
    """Re-attach to a job: the same display as `submit --wait`."""
    client, settings = client_from(args)
    async with client:
        return await _wait_and_report(
            client, args.job_id, args.timeout or default_wait_s(settings), settings
        )


async def cmd_job(args: argparse.Namespace) -> int:
    """status / cancel / retry of one job (retry --wait then waits for it)."""
    client, settings = client_from(args)
    async with client:
        ops = {"status": client.status, "cancel": client.cancel, "retry": client.retry}
        state = await ops[args.command](args.job_id)
        if args.command == "retry" and getattr(args, "wait", False):
            return await _wait_and_report(
                client, args.job_id, args.timeout or default_wait_s(settings), settings
            )
        print_json(state_dict(state))
        if args.command == "status" and _failed(state):
            report_ending(state)
            return EXIT_FAILED
        return EXIT_OK


async def cmd_purge(args: argparse.Namespace) -> int:
    client, _ = client_from(args)
    async with client:
        removed = await client.purge_queue()
    print_json({"removed": removed})
    return EXIT_OK


def item_line(entry: Any) -> str:
    """One streamed item as a line: `index<TAB>id<TAB>ok`, or `...error<TAB>stage: message`."""
    if not isinstance(entry, dict):
        return json.dumps(entry, default=str)
    head = f"{entry.get('index', '?')}\t{entry.get('id', '?')}"
    if "error" in entry:
        err = entry["error"] if isinstance(entry["error"], dict) else {"message": entry["error"]}
        message = " ".join(str(err.get("message", "")).split())[:300]
        return f"{head}\terror\t{err.get('stage', '?')}: {message}"
    if "omitted" in entry:
        return f"{head}\tok\t(result omitted from the stream: too large)"
    return f"{head}\tok"


async def cmd_stream(args: argparse.Namespace) -> int:
    """Print a job's streamed per-item results as they arrive, until the job is final.

    A podfleet coordinator streams `{"items": [{"index", "id", "result" | "error"}]}` chunks;
    each item becomes one line (`--json`: the entry as JSON). Any other chunk (a generator
    handler's) is printed as one JSON line. Ends on every final status, CANCELLED included."""
    client, settings = client_from(args)
    timeout_s = args.timeout or default_wait_s(settings)
    seen = failed = 0
    async with client:
        async for chunk in client.stream(args.job_id, timeout_s=timeout_s):
            items = chunk.get("items") if isinstance(chunk, dict) else None
            if not isinstance(items, list):
                print(json.dumps(chunk, default=str), flush=True)
                continue
            for entry in items:
                seen += 1
                failed += isinstance(entry, dict) and "error" in entry
                print(json.dumps(entry, default=str) if args.json else item_line(entry))
            sys.stdout.flush()
        final = await client.status(args.job_id)
    err_console().print(
        f"job {final.id} {final.status}: {seen} items streamed, {failed} with errors",
        markup=False,
        soft_wrap=True,
    )
    if _failed(final):
        report_ending(final)
        return EXIT_FAILED
    return EXIT_OK
