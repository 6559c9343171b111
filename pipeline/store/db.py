"""Engines (one per URL per process, reused by later jobs; migrated on first use) and upserts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

__all__ = ["dispose_engines", "engine_for", "get_engine", "normalise_url", "redact_url", "upsert"]

CONNECT_TIMEOUT_S = 10  # PostgreSQL: a host that never answers fails this fast (then is retried)
SQLITE_BUSY_TIMEOUT_MS = 30000

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def redact_url(url: str) -> str:
    """The URL with its password hidden, safe for logs and outputs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"


def normalise_url(url: str) -> str:
    """Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3. A relative SQLite
    path is made absolute (from the working directory now): engines are cached by URL, and a
    cached engine must not follow a later change of directory to another file (or keep
    serving the first one when a process moves on, as a test suite does)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith(("file:", "?")):
            return "sqlite:///" + str(Path(path).absolute())
    return url


def engine_for(url: str) -> Engine:
    """A new engine for `url` (not cached, not migrated): pragmas and transactions set up."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
    if parsed.database in (None, "", ":memory:"):
        engine = create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )  # one shared connection: every thread sees the same in-memory database
    else:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def get_engine(url: str) -> Engine:
    """The process's engine for `url`; the schema is migrated to head the first time."""
    from podfleet.pipeline.store.migrate import migrate

    key = normalise_url(url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = engine_for(key)
            try:
                migrate(engine)
            except BaseException:
                engine.dispose()  # not cached: the next call tries again (the DB may be back)
                raise
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (migrations re-checked on next use)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite opens transactions only before DML and never before DDL or SAVEPOINT; let
    # SQLAlchemy's "begin" event do it instead (SQLAlchemy's documented recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: WAL below may wait
    cur.execute("PRAGMA journal_mode=WAL")  # several worker processes write the same file
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # `sqlite_begin_immediate`: take the write lock now (migrations, loads), not at first write,
    # so two writers queue on busy_timeout instead of one failing with "database is locked".
    immediate = conn.get_execution_options().get("sqlite_begin_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, replacing the non-key columns of rows whose primary key exists."""
    if not rows:
        return
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table)
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    else:  # pragma: no cover - only the two dialects above are supported
        raise ValueError(f"unsupported database dialect {dialect!r}")
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)
