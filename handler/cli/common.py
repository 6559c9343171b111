"""What every `podfleet` subcommand shares: the endpoint client, JSON output, errors, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "client_from",
    "err_console",
    "print_json",
    "read_job",
    "state_dict",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line or its files: exit 2 with this message."""


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str), flush=True)


def read_job(path: str) -> dict[str, Any]:
    """A job file {"input": ..., "policy"?, "webhook"?} ("-" = stdin)."""
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


def add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-id", help="endpoint id or .../v2/<id>/run URL")
    parser.add_argument("--base-url", help="API base, e.g. http://127.0.0.1:8000/v2")
    parser.add_argument("--api-key", help="API key (default: RUNPOD_API_KEY)")


def client_from(args: argparse.Namespace):
    """(EndpointClient, Settings) from the settings and the --endpoint-id/--base-url/--api-key
    flags. A refused connection is not retried: the CLI says at once that nothing listens."""
    from podfleet.api import EndpointClient
    from podfleet.settings import endpoint_id_from, load_settings
    from pydantic import ValidationError

    try:
        settings = load_settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise UsageError(f"{field}: {first['msg']}") from None
    overrides: dict[str, Any] = {"retry_connect": False}
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
        raise UsageError(
            "no endpoint: pass --endpoint-id or set RUNPOD_ENDPOINT_ID "
            "(`podfleet emulate` prints the variables for a local one)"
        )
    return EndpointClient.from_settings(settings, **overrides), settings


def state_dict(state: Any) -> dict[str, Any]:
    return state.raw or state.model_dump(mode="json", exclude={"raw"})
