"""Storage: SQLAlchemy 2 tables, Alembic migrations, idempotent loads into SQLite or PostgreSQL."""

from podfleet.pipeline.store.db import dispose_engines, get_engine, redact_url
from podfleet.pipeline.store.ledger import ChunkRow, Claim, Ledger, LedgerConflict
from podfleet.pipeline.store.schema import documents, flashpoints, metadata, runs

__all__ = [
    "ChunkRow",
    "Claim",
    "Ledger",
    "LedgerConflict",
    "dispose_engines",
    "documents",
    "flashpoints",
    "get_engine",
    "head_revision",
    "metadata",
    "redact_url",
    "runs",
    "upgrade",
]


def upgrade(url: str) -> str:
    """Migrate the database at `url` to the newest revision; returns it (see migrate.py)."""
    from podfleet.pipeline.store.migrate import upgrade as _upgrade  # Alembic only when used

    return _upgrade(url)


def head_revision() -> str:
    from podfleet.pipeline.store.migrate import head_revision as _head

    return _head()
