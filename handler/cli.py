"""`podfleet`: run the local emulator, and submit / watch / cancel jobs on any endpoint.

    podfleet emulate --workers 4 [--port 8000] [--endpoint-id ID] [--api-key KEY]
    podfleet submit job.json [--wait | --stream]     (job.json like test_input.json; - = stdin)
    podfleet status JOB_ID | cancel JOB_ID | health

The endpoint comes from the settings (RUNPOD_ENDPOINT_ID, RUNPOD_ENDPOINT_BASE_URL,
RUNPOD_API_KEY) or from --endpoint-id / --base-url / --api-key. Results go to stdout as JSON; the
live progress display goes to stderr. Exit codes: 0 success, 1 job failed (or the API refused),
2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint-id", help="endpoint id or .../v2/<id>/run URL")
    common.add_argument("--base-url", help="API base, e.g. http://127.0.0.1:8000/v2")
    common.add_argument("--api-key", help="API key (default: RUNPOD_API_KEY)")

    p = argparse.ArgumentParser(prog="podfleet", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    emu = sub.add_parser("emulate", help="run the local RunPod emulator in the foreground")
    emu.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    emu.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    emu.add_argument("--endpoint-id", default="local-endpoint")
    emu.add_argument("--api-key", help="require this API key from clients")

    submit = sub.add_parser("submit", parents=[common], help="submit a job file")
    submit.add_argument("file", help='job JSON {"input": {...}} ("-" reads stdin)')
    mode = submit.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="wait and show progress")
    mode.add_argument("--stream", action="store_true", help="print streamed chunks as they come")
    submit.add_argument("--timeout", type=float, help="seconds to wait (default WAIT_TIMEOUT_S)")

    for name, text in (("status", "show a job's status"), ("cancel", "cancel a job")):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("job_id")
    sub.add_parser("health", parents=[common], help="show the endpoint's health")
    return p


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str), flush=True)


def _read_job(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        job = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc}") from None
    if not isinstance(job, dict) or "input" not in job:
        raise UsageError(f'{path}: expected a job object {{"input": {{...}}}}')
    unknown = set(job) - {"input", "policy", "webhook"}
    if unknown:
        raise UsageError(f"{path}: unknown field {sorted(unknown)[0]!r} (input, policy, webhook)")
    return job


def _client(args: argparse.Namespace):
    from podfleet.api import EndpointClient
    from podfleet.settings import endpoint_id_from, load_settings

    settings = load_settings()
    overrides: dict[str, Any] = {}
    try:
        if args.endpoint_id:
            overrides["endpoint_id"] = endpoint_id_from(args.endpoint_id)
    except ValueError as exc:
        raise UsageError(f"--endpoint-id: {exc}") from None
    if args.base_url:
        overrides["base_url"] = args.base_url
    if args.api_key:
        overrides["api_key"] = args.api_key
    if not (overrides.get("endpoint_id") or settings.runpod_endpoint_id):
        raise UsageError("no endpoint: pass --endpoint-id or set RUNPOD_ENDPOINT_ID")
    return EndpointClient.from_settings(settings, **overrides), settings


def _state_dict(state: Any) -> dict[str, Any]:
    return state.raw or state.model_dump(mode="json", exclude={"raw"})


def _failed(state: Any) -> bool:
    from podfleet.api import JobStatus

    if state.status != JobStatus.COMPLETED:
        return state.status.is_terminal()
    return isinstance(state.output, dict) and state.output.get("ok") is False


class _ProgressView:
    """The live display: status, queue/run times and the job's `progress_update` payload."""

    def __init__(self, job_id: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.job_id = job_id
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task(job_id, total=None, status="IN_QUEUE", detail=job_id)

    def update(self, state: Any) -> None:
        p = state.progress or {}
        done, total = p.get("items_done"), p.get("items_total")
        detail = state.id
        if "siblings_in_flight" in p:
            detail += f"  siblings in flight: {p['siblings_in_flight']}"
        if state.terminal and isinstance(state.output, dict):
            done = total = state.output.get("items", done)
            done = state.output.get("succeeded", done)
        kw: dict[str, Any] = {"status": str(state.status), "detail": detail}
        if isinstance(total, int):
            kw["total"] = total
        if isinstance(done, int):
            kw["completed"] = done
        self.progress.update(self.task, **kw)


async def _submit(args: argparse.Namespace) -> int:
    from podfleet.api import Policy

    job = _read_job(args.file)
    client, settings = _client(args)
    policy = None
    if isinstance(job.get("policy"), dict):
        wire = job["policy"]
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
            _print_json(_state_dict(state))
            return EXIT_OK
        timeout_s = args.timeout or settings.wait_timeout_s
        if args.stream:
            async for chunk in client.stream(state.id, timeout_s=timeout_s):
                print(json.dumps(chunk, default=str), flush=True)
            final = await client.status(state.id)
        else:
            view = _ProgressView(state.id)
            with view.progress:
                final = await client.wait(
                    state.id,
                    timeout_s=timeout_s,
                    interval_s=min(1.0, settings.wait_interval_s),
                    on_update=view.update,
                )
        _print_json(_state_dict(final))
        return EXIT_FAILED if _failed(final) else EXIT_OK


async def _one(args: argparse.Namespace) -> int:
    client, _ = _client(args)
    async with client:
        if args.command == "health":
            health = await client.health()
            _print_json(health.raw or health.model_dump(exclude={"raw"}))
            return EXIT_OK
        call = client.status if args.command == "status" else client.cancel
        state = await call(args.job_id)
        _print_json(_state_dict(state))
        return EXIT_FAILED if args.command == "status" and _failed(state) else EXIT_OK


def _emulate(args: argparse.Namespace) -> int:
    from podfleet.emulator import EmulatorConfig, serve_forever

    if args.workers < 0:
        raise UsageError("--workers must be >= 0")
    config = EmulatorConfig(
        endpoint_id=args.endpoint_id, api_key=args.api_key, workers=args.workers
    )
    serve_forever(config, args.port)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    from podfleet.api import ApiError

    try:
        if args.command == "emulate":
            code = _emulate(args)
        elif args.command == "submit":
            code = asyncio.run(_submit(args))
        else:
            code = asyncio.run(_one(args))
    except UsageError as exc:
        err.print(f"[red]podfleet: {exc}[/red]")
        code = EXIT_USAGE
    except ApiError as exc:
        err.print(f"[red]podfleet: {exc}[/red]")
        code = EXIT_FAILED
    except KeyboardInterrupt:
        code = 130
    return code


if __name__ == "__main__":
    sys.exit(main())
