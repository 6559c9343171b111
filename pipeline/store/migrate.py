"""Schema migrations (Alembic) applied safely when several processes start on one database at once.

`migrate(engine)` brings a database to the newest revision inside ONE transaction that first takes
a lock every other migrating process waits for:

- PostgreSQL: `pg_advisory_xact_lock`, keyed by database and schema, released at commit;
- SQLite: `BEGIN IMMEDIATE` (the database's write lock; others wait up to `busy_timeout`).

The second process then finds the database at head and does nothing. The DDL runs in that same
transaction on both engines, so a failed migration leaves the previous revision intact.
A database made by `create_all` before migrations existed is adopted by revision 0001.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from podfleet.pipeline.errors import StageError
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

__all__ = ["UnknownRevisionError", "current_revision", "head_revision", "migrate", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY_SQL = (
    "SELECT pg_advisory_xact_lock(hashtext('podfleet-migrate:' || coalesce(current_schema(), '')))"
)


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise RuntimeError("the store's migration chain has no head")
    return head


class UnknownRevisionError(StageError):
    """The database was migrated by a newer podfleet than this one (an image rolled back)."""


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str:
    """Upgrade the database behind `engine` to head under the migration lock; returns the head."""
    head = head_revision()
    conn_cm = engine.connect().execution_options(sqlite_begin_immediate=True)
    with conn_cm as conn, conn.begin():  # SQLite: BEGIN IMMEDIATE, the lock itself
        if conn.dialect.name == "postgresql":
            conn.execute(text(_LOCK_KEY_SQL))
        before = current_revision(conn)
        known = {rev.revision for rev in _scripts().walk_revisions()}
        if before is not None and before not in known:
            raise UnknownRevisionError(
                f"the database is at schema revision {before!r}, which this podfleet does not "
                f"know (its newest is {head!r}): it was upgraded by a newer version; run that "
                "version, or downgrade the database with it first",
                stage="load",
            )
        if before != head:
            command.upgrade(alembic_config(conn), "head")
            logger.info("database schema upgraded from {} to {}", before or "none", head)
    return head


def upgrade(url: str) -> str:
    """Bring the database at `url` to the newest revision (what `python -m ... upgrade` runs)."""
    from podfleet.pipeline.store.db import engine_for

    engine = engine_for(url)
    try:
        return migrate(engine)
    finally:
        engine.dispose()
