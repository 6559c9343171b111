"""`podfleet emulate`: the local RunPod emulator in the foreground, running the user's workers.

The worker command is `--worker-cmd`, else `python -u handler.py` when the working directory
(`--cwd`, default: the current one) has a handler.py, else podfleet's own worker
(`python -u -m podfleet`: a wheel ships no handler.py).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from podfleet.cli.common import EXIT_OK, UsageError

__all__ = ["add_emulate_parser", "cmd_emulate", "default_worker_cmd"]


def default_worker_cmd(cwd: Path) -> list[str]:
    if (cwd / "handler.py").is_file():
        return [sys.executable, "-u", "handler.py"]
    return [sys.executable, "-u", "-m", "podfleet"]


def add_emulate_parser(sub: argparse._SubParsersAction) -> None:
    emu = sub.add_parser(
        "emulate",
        help="run the local RunPod emulator in the foreground",
        description="Run an emulated RunPod endpoint on 127.0.0.1 with real SDK worker processes; "
        "it prints the endpoint URL, the dashboard URL and the variables a client needs.",
    )
    emu.add_argument("--workers", type=int, default=2, help="worker processes: workersMax (2)")
    emu.add_argument(
        "--workers-min",
        type=int,
        help="scale between this and --workers with the queue (default: all always on)",
    )
    emu.add_argument(
        "--idle-timeout", type=float, default=5.0, help="idle worker stops after this (s, 5)"
    )
    emu.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    emu.add_argument("--endpoint-id", default="local-endpoint")
    emu.add_argument("--api-key", help="require this API key from clients (never printed)")
    emu.add_argument("--worker-cmd", help="worker command (default: python -u handler.py)")
    emu.add_argument("--cwd", help="workers' working directory (default: the current one)")
    emu.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the workers (repeatable)",
    )
    emu.add_argument("--log-file", help="append the workers' output here instead of the terminal")
    faults = emu.add_argument_group("faults")
    faults.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of API calls failed"
    )
    faults.add_argument(
        "--error-statuses", default="429,500,502,503", help="statuses of injected errors"
    )
    faults.add_argument("--error-routes", help="routes that may fail, e.g. run,status (all)")
    faults.add_argument(
        "--accepted-error-rate",
        type=float,
        default=0.0,
        help="fraction of /run calls that create the job but answer 502",
    )
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to API calls")
    faults.add_argument(
        "--rate-limits",
        action="store_true",
        help="answer 429 over RunPod's per-10 s rate limits (run 1000, status 2000, ...)",
    )
    faults.add_argument("--max-workers", type=int, help="cap: workers above it are throttled")
    faults.add_argument(
        "--cold-start", type=float, default=0.0, help="seconds before a new worker takes jobs"
    )
    faults.add_argument(
        "--kill-worker-every", type=float, help="SIGKILL a busy worker every N seconds"
    )
    faults.add_argument("--seed", type=int, help="seed of the fault dice")


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env: expected KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def cmd_emulate(args: argparse.Namespace) -> int:
    from podfleet.emulator import EmulatorConfig, FaultConfig, serve_forever
    from pydantic import ValidationError

    cwd = Path(args.cwd or ".").resolve()
    if not cwd.is_dir():
        raise UsageError(f"--cwd: {cwd} is not a directory")
    cmd = shlex.split(args.worker_cmd) if args.worker_cmd else default_worker_cmd(cwd)
    if not cmd:
        raise UsageError("--worker-cmd: empty command")
    try:
        statuses = [int(s) for s in args.error_statuses.split(",") if s.strip()]
    except ValueError:
        raise UsageError(
            f"--error-statuses: expected numbers, got {args.error_statuses!r}"
        ) from None
    routes = [r.strip() for r in args.error_routes.split(",")] if args.error_routes else None
    try:
        faults = FaultConfig(
            api_error_rate=args.error_rate,
            api_error_statuses=statuses,
            api_error_routes=routes,
            run_accepted_error_rate=args.accepted_error_rate,
            latency_s=args.latency,
            rate_limits=args.rate_limits,
            max_workers=args.max_workers,
            cold_start_s=args.cold_start,
            seed=args.seed,
        )
        config = EmulatorConfig(
            endpoint_id=args.endpoint_id,
            api_key=args.api_key,
            workers=args.workers,
            workers_min=args.workers_min,
            idle_timeout_s=args.idle_timeout,
            worker_cmd=cmd,
            worker_cwd=cwd,
            worker_env=_env_pairs(args.env),
            worker_log_path=Path(args.log_file).resolve() if args.log_file else None,
            faults=faults,
            log_events=True,
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "config"
        raise UsageError(f"{field.replace('_', '-')}: {err['msg']}") from None
    if args.kill_worker_every is not None and args.kill_worker_every <= 0:
        raise UsageError("--kill-worker-every must be > 0")
    serve_forever(config, args.port, kill_every_s=args.kill_worker_every)
    return EXIT_OK
