"""`python -m podfleet.pipeline.store upgrade [URL]`: migrate a database to the newest schema.

URL defaults to $DATABASE_URL, then to the workers' default (sqlite:///data/podfleet.db). Workers
also migrate on their first use of a database; this command does it ahead of a deployment.
`current [URL]` prints the database's revision and the newest one.
"""

from __future__ import annotations

import argparse
import os
import sys

from podfleet.pipeline.config import StoreConfig
from podfleet.pipeline.store.db import engine_for, redact_url
from podfleet.pipeline.store.errors import db_error
from podfleet.pipeline.store.migrate import current_revision, head_revision, upgrade
from sqlalchemy.exc import SQLAlchemyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podfleet.pipeline.store")
    parser.add_argument("command", choices=["upgrade", "current"])
    parser.add_argument("url", nargs="?", help="SQLAlchemy URL (default: $DATABASE_URL)")
    args = parser.parse_args(argv)
    # The one place in pipeline/ that reads the environment: this is a command, not a library.
    url = args.url or os.environ.get("DATABASE_URL") or StoreConfig().database_url
    try:
        if args.command == "upgrade":
            head = upgrade(url)
            print(f"{redact_url(url)}: at revision {head} (head)")
        else:
            engine = engine_for(url)
            try:
                with engine.connect() as conn:
                    rev = current_revision(conn)
            finally:
                engine.dispose()
            print(f"{redact_url(url)}: at revision {rev or 'none'}; head is {head_revision()}")
    except SQLAlchemyError as exc:
        print(f"error: {db_error(exc, args.command).message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
