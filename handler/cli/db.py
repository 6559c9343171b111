"""`podfleet db upgrade|current [--url URL]`: the store's schema migrations, ahead of a deployment;
`podfleet db results|errors FANOUT_ID [--url URL]`: a fan-out's results (or item errors) from the
chunk ledger, as JSON Lines in input order.

Workers also migrate on their first use of a database (under a lock); this runs the same Alembic
migrations (pipeline/store/migrations) from a shell, on DATABASE_URL by default. Needs the `store`
extra (SQLAlchemy, Alembic), imported only when the command runs. No output names a password.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from podfleet.cli.common import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["add_db_parser", "cmd_db"]

_LEDGER_ACTIONS = ("results", "errors")


def add_db_parser(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser(
        "db",
        help="database schema (upgrade, current); a fan-out's results or errors from the ledger",
        description="upgrade|current: the schema's migrations. results|errors FANOUT_ID: one "
        'JSON line per item in input order ({"index", "result"}; errors: {"item_id", "stage", '
        '"message", "retryable"}), from the chunk ledger (the output\'s results_at.fanout_id).',
    )
    db.add_argument("action", choices=["upgrade", "current", *_LEDGER_ACTIONS])
    db.add_argument("fanout_id", nargs="?", help="results|errors: the fan-out id")
    db.add_argument("--url", help="SQLAlchemy URL (default: DATABASE_URL from the settings)")


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    from podfleet.settings import load_settings
    from pydantic import ValidationError

    try:
        return load_settings().database_url.get_secret_value()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise UsageError(f"{field}: {first['msg']}") from None


def cmd_db(args: argparse.Namespace) -> int:
    if args.action in _LEDGER_ACTIONS:
        if not args.fanout_id:
            raise UsageError(f"podfleet db {args.action} needs FANOUT_ID")
        return _ledger_command(args.action, args.fanout_id, _url(args))
    if args.fanout_id:
        raise UsageError(f"podfleet db {args.action} takes no FANOUT_ID (only --url)")
    url = _url(args)
    try:
        from podfleet.pipeline.store.__main__ import main as store_main
    except ImportError as exc:
        extra = "pip install 'podfleet[store]'"
        raise UsageError(f"podfleet db needs the store extra ({extra}): {exc}") from None
    return store_main([args.action, url])


def _ledger_command(action: str, fanout_id: str, url: str) -> int:
    try:
        from podfleet.pipeline.errors import StageError
        from podfleet.pipeline.store.db import redact_url
        from podfleet.pipeline.store.errors import db_error
        from podfleet.pipeline.store.ledger import Ledger
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError as exc:
        extra = "pip install 'podfleet[store]'"
        raise UsageError(f"podfleet db needs the store extra ({extra}): {exc}") from None
    ledger = Ledger(url)
    try:
        if ledger.fanout(fanout_id) is None:
            print(f"error: no fan-out {fanout_id!r} in {redact_url(url)}", file=sys.stderr)
            return EXIT_FAILED
        if action == "results":
            lines: Iterable[dict[str, Any]] = (
                {"index": pos, "result": result} for pos, result in ledger.iter_results(fanout_id)
            )
        else:
            lines = ledger.iter_errors(fanout_id)
        _print_lines(lines)
    except SQLAlchemyError as exc:
        print(f"error: {db_error(exc, 'reading the ledger').message}", file=sys.stderr)
        return EXIT_FAILED
    except StageError as exc:  # e.g. a database migrated by a newer podfleet
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `| head`: the reader has gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError at exit's flush
    return EXIT_OK


def _print_lines(lines: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout
    for n, line in enumerate(lines, 1):
        out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        if n % 1000 == 0:
            out.flush()
    out.flush()
