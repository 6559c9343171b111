"""Storage: SQLAlchemy 2 tables, Alembic migrations, idempotent loads into SQLite or PostgreSQL."""

from podfleet.pipeline.store.db import dispose_engines, get_engine, redact_url
from podfleet.pipeline.store.migrate import head_revision, upgrade
from podfleet.pipeline.store.schema import documents, flashpoints, metadata, runs

__all__ = [
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
