"""`podfleet`: run the local emulator, and submit / watch / diagnose jobs on any endpoint.

    podfleet emulate [--workers 4] [--worker-cmd CMD] [--cwd DIR] [--env K=V] [faults...]
    podfleet submit job.json [--wait | --stream]    (job.json like test_input.json; - = stdin)
    podfleet stream JOB_ID [--json]                 (per-item results as they complete)
    podfleet wait JOB_ID | status JOB_ID | cancel JOB_ID | retry JOB_ID [--wait] | purge
    podfleet health [--json] | workers [--json] | doctor [--probe synthetic] [--json]
    podfleet db upgrade|current [--url URL]         (the store's schema migrations)
    podfleet db results|errors FANOUT_ID [--url URL] (a fan-out's results from the ledger)

The endpoint comes from the settings (RUNPOD_ENDPOINT_ID, RUNPOD_ENDPOINT_BASE_URL,
RUNPOD_API_KEY) or from --endpoint-id / --base-url / --api-key. Results go to stdout as JSON; the
live progress display goes to stderr. Exit codes: 0 success (doctor: healthy), 1 job failed, the
API refused, or doctor found a problem, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import PackageNotFoundError, version

from podfleet.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    add_endpoint_args,
    err_console,
)

__all__ = ["main"]


def _version() -> str:
    try:
        return version("podfleet")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    from podfleet.cli.db import add_db_parser
    from podfleet.cli.emulate import add_emulate_parser

    common = argparse.ArgumentParser(add_help=False)
    add_endpoint_args(common)

    p = argparse.ArgumentParser(prog="podfleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"podfleet {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_emulate_parser(sub)
    add_db_parser(sub)

    submit = sub.add_parser("submit", parents=[common], help="submit a job file")
    submit.add_argument("file", help='job JSON {"input": {...}} ("-" reads stdin)')
    mode = submit.add_mutually_exclusive_group()
    mode.add_argument("--wait", action="store_true", help="wait and show progress")
    mode.add_argument("--stream", action="store_true", help="print streamed chunks as they come")
    submit.add_argument(
        "--timeout", type=float, help="seconds to wait (default: the job's deadline + 60)"
    )

    stream = sub.add_parser(
        "stream", parents=[common], help="print a job's per-item results as they arrive"
    )
    stream.add_argument("job_id")
    stream.add_argument("--json", action="store_true", help="each item as a JSON line")
    stream.add_argument("--timeout", type=float, help="seconds (default: REQUEST_TIMEOUT + 60)")

    wait = sub.add_parser("wait", parents=[common], help="re-attach to a job: progress, result")
    wait.add_argument("job_id")
    wait.add_argument("--timeout", type=float, help="seconds (default: REQUEST_TIMEOUT + 60)")
    for name, text in (
        ("status", "show a job's status"),
        ("cancel", "cancel a job"),
        ("retry", "re-queue a FAILED or TIMED_OUT job"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("job_id")
        if name == "retry":
            cmd.add_argument("--wait", action="store_true", help="then wait for it")
            cmd.add_argument("--timeout", type=float)
    sub.add_parser("purge", parents=[common], help="remove every queued job")

    health = sub.add_parser("health", parents=[common], help="the endpoint's job/worker counts")
    health.add_argument("--json", action="store_true", help="raw /health JSON")
    workers = sub.add_parser("workers", parents=[common], help="per-worker state (REST v2)")
    workers.add_argument("--json", action="store_true")
    doctor = sub.add_parser(
        "doctor", parents=[common], help="diagnose the endpoint: each problem, evidence, fix"
    )
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument(
        "--probe",
        nargs="?",
        const="synthetic",
        help="also run a probe job: 'synthetic' (default) or a job input as JSON",
    )
    doctor.add_argument("--probe-timeout", type=float, default=60.0, help="seconds (60)")
    doctor.add_argument(
        "--sample", type=float, default=3.0, help="seconds between two health reads (3)"
    )
    doctor.add_argument(
        "--stuck-after",
        type=float,
        default=120.0,
        help="an INITIALIZING worker older than this is stuck (s, 120)",
    )
    return p


def _quiet_client_logs() -> None:
    """Client commands report errors themselves: no loguru debug lines (retries) on stderr."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")


def _dispatch(args: argparse.Namespace) -> int:
    from podfleet.cli import health, jobs

    if args.command == "emulate":
        from podfleet.cli.emulate import cmd_emulate

        return cmd_emulate(args)
    if args.command == "db":
        from podfleet.cli.db import cmd_db

        return cmd_db(args)
    _quiet_client_logs()
    commands = {
        "submit": jobs.cmd_submit,
        "wait": jobs.cmd_wait,
        "stream": jobs.cmd_stream,
        "status": jobs.cmd_job,
        "cancel": jobs.cmd_job,
        "retry": jobs.cmd_job,
        "purge": jobs.cmd_purge,
        "health": health.cmd_health,
        "workers": health.cmd_workers,
        "doctor": health.cmd_doctor,
    }
    handler = commands.get(args.command)
    if handler is None:  # argparse refuses unknown commands; never fall through to another
        raise UsageError(f"unknown command {args.command!r}")
    return asyncio.run(handler(args))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = err_console()
    from podfleet.api import ApiConnectionError, ApiError

    try:
        return _dispatch(args)
    except UsageError as exc:
        err.print(f"podfleet: {exc}", style="red", markup=False, soft_wrap=True)
        return EXIT_USAGE
    except ApiConnectionError as exc:
        err.print(f"podfleet: {exc}", style="red", markup=False, soft_wrap=True)
        err.print(
            "hint: is the endpoint running? For a local one start `podfleet emulate` and export "
            "the variables it prints (RUNPOD_ENDPOINT_BASE_URL, RUNPOD_ENDPOINT_ID)",
            soft_wrap=True,
        )
        return EXIT_FAILED
    except ApiError as exc:
        err.print(f"podfleet: {exc}", style="red", markup=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
