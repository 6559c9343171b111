"""Alembic environment. Runs on the connection `migrate.py` hands over (already in a transaction,
under the migration lock); from the `alembic` command line it connects to `sqlalchemy.url`."""

from __future__ import annotations

from alembic import context
from podfleet.pipeline.store.schema import metadata
from sqlalchemy import create_engine

config = context.config
target_metadata = metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:  # the alembic CLI (alembic.ini next to this directory)
    from podfleet.pipeline.store.db import normalise_url

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(normalise_url(url))
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()
