"""`podfleet db upgrade|current [--url URL]`: the store's schema migrations, ahead of a deployment.

Workers also migrate on their first use of a database (under a lock); this runs the same Alembic
migrations (pipeline/store/migrations) from a shell, on DATABASE_URL by default. Needs the `store`
extra (SQLAlchemy, Alembic), imported only when the command runs.
"""

from __future__ import annotations

import argparse

from podfleet.cli.common import UsageError

__all__ = ["add_db_parser", "cmd_db"]


def add_db_parser(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema: upgrade to the newest, or show the current")
    db.add_argument("action", choices=["upgrade", "current"])
    db.add_argument("--url", help="SQLAlchemy URL (default: DATABASE_URL from the settings)")


def cmd_db(args: argparse.Namespace) -> int:
    from podfleet.settings import load_settings
    from pydantic import ValidationError

    url = args.url
    if not url:
        try:
            url = load_settings().database_url.get_secret_value()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
            raise UsageError(f"{field}: {first['msg']}") from None
    try:
        from podfleet.pipeline.store.__main__ import main as store_main
    except ImportError as exc:
        extra = "pip install 'podfleet[store]'"
        raise UsageError(f"podfleet db needs the store extra ({extra}): {exc}") from None
    return store_main([args.action, url])
