"""Engines (one per URL per process, reused by later jobs) and dialect-aware upserts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from podfleet.pipeline.store.schema import metadata
from sqlalchemy import Engine, Table, create_engine, event, make_url
from sqlalchemy.engine import Connection

__all__ = ["get_engine", "redact_url", "upsert"]

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def redact_url(url: str) -> str:
    """The URL with its password hidden, safe for logs and outputs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"


def _normalise(url: str) -> str:
    # Plain postgresql:// means psycopg2 to SQLAlchemy; we ship psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def get_engine(url: str) -> Engine:
    """The process's engine for `url`, tables created on first use."""
    url = _normalise(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, pool_pre_ping=True)
            if parsed.get_backend_name() == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            metadata.create_all(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tables are re-checked on next use)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # several worker processes write the same file
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, replacing the non-key columns of rows whose primary key exists."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two dialects above are supported
        raise ValueError(f"unsupported database dialect {dialect!r}")
    stmt = insert(table)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates), rows)
