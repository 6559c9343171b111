"""Storage: SQLAlchemy 2 tables and idempotent loads into SQLite (default) or PostgreSQL."""

from podfleet.pipeline.store.db import get_engine, redact_url
from podfleet.pipeline.store.schema import documents, flashpoints, metadata, runs

__all__ = ["documents", "flashpoints", "get_engine", "metadata", "redact_url", "runs"]
