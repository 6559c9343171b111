"""Tables: one row per job run, per flashpoint and date, per document (source) of a flashpoint."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["documents", "flashpoints", "metadata", "runs"]

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("job_id", String(200), primary_key=True),
    Column("date", Date, nullable=False, index=True),
    Column("trigger", String(20), nullable=False),
    Column("worker_id", String(200)),
    Column("items", Integer, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
)

flashpoints = Table(
    "flashpoints",
    metadata,
    Column("date", Date, primary_key=True),
    Column("flashpoint_id", String(200), primary_key=True),
    Column("title", Text, nullable=False),
    Column("documents", Integer, nullable=False),
    Column("words", Integer, nullable=False),
    Column("centroid", LargeBinary),  # float32 little-endian, or NULL before inference ran
    Column("job_id", String(200)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("date", Date, primary_key=True),
    Column("flashpoint_id", String(200), primary_key=True),
    Column("source_key", String(8192), primary_key=True),
    Column("source_index", Integer, nullable=False),
    Column("url", Text),
    Column("final_url", Text),
    Column("http_status", Integer),
    Column("title", Text),
    Column("text", Text, nullable=False),
    Column("word_count", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("duplicate_of", Integer),
    Column("near_duplicate_of", Integer),
    Column("is_near_duplicate", Boolean, nullable=False, default=False),
    Column("relevance", Float),
    Column("embedding", LargeBinary),  # float32 little-endian
    Column("links", JSON),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
