"""Tables at the newest migration (`migrations/versions/`): one row per job run, per flashpoint and
date, per document (source) of a flashpoint.

This module describes the head of the migration chain; it never creates a table. A schema change is
a new revision (docs/store.md) plus the matching edit here; a test checks that the two agree.
"""

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

__all__ = ["JOB_ID_MAX", "MODEL_NAME_MAX", "documents", "flashpoints", "metadata", "runs"]

JOB_ID_MAX = 200  # characters of a stored job id (longer ids are stored shortened, see validate.py)
MODEL_NAME_MAX = 200

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("job_id", String(JOB_ID_MAX), primary_key=True),
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
    Column("job_id", String(JOB_ID_MAX)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # revision 0002: the model that made `centroid` (NULL: no vector, or stored before 0002)
    Column("embedding_model", String(MODEL_NAME_MAX)),
    Column("embedding_dim", Integer),
)

documents = Table(
    "documents",
    metadata,
    Column("date", Date, primary_key=True),
    Column("flashpoint_id", String(200), primary_key=True),
    # revision 0003: keyed by the source's position, so two sources with one URL are two rows
    Column("source_index", Integer, primary_key=True),
    Column("source_key", Text, nullable=False),
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
    # revision 0002: the model (and its dimension) that made `embedding`
    Column("embedding_model", String(MODEL_NAME_MAX)),
    Column("embedding_dim", Integer),
)
