"""Tables at the newest migration (`migrations/versions/`): one row per job run, per flashpoint and
date, per document (source) of a flashpoint; the chunk ledger of fan-outs (one row per fan-out, one
per chunk of it: `ledger.py`).

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
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "FANOUT_ID_MAX",
    "JOB_ID_MAX",
    "MODEL_NAME_MAX",
    "documents",
    "fanout_chunks",
    "fanouts",
    "flashpoints",
    "metadata",
    "runs",
]

JOB_ID_MAX = 200  # characters of a stored job id (longer ids are stored shortened, see validate.py)
MODEL_NAME_MAX = 200
FANOUT_ID_MAX = 200

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

# revision 0004: the chunk ledger (docs/store.md, "The chunk ledger")
fanouts = Table(
    "fanouts",
    metadata,
    Column("fanout_id", String(FANOUT_ID_MAX), primary_key=True),
    Column("job_id", String(JOB_ID_MAX), nullable=False),  # the coordinator job that last opened it
    Column("fingerprint", String(64), nullable=False),  # sha256 hex of the job's canonical input
    Column("items", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("state", String(20), nullable=False),  # open | closed | failed ...
    Column("summary", JSON(none_as_null=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

fanout_chunks = Table(
    "fanout_chunks",
    metadata,
    Column("fanout_id", String(FANOUT_ID_MAX), primary_key=True),
    Column("chunk", Integer, primary_key=True),
    Column("positions", JSON(none_as_null=True)),  # inline items: their input positions
    Column("ref", JSON(none_as_null=True)),  # items by reference: the ChunkRef
    Column("state", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),  # the claim token, monotonic
    Column("sibling_ids", JSON, nullable=False),  # every sibling job id, in order
    Column("claimed_by", String(JOB_ID_MAX)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("duplicates", Integer, nullable=False, default=0),  # claims refused
    Column(
        "outcome", JSON(none_as_null=True)
    ),  # the chunk's JobOutput.to_output(), results included
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["fanout_id"], ["fanouts.fanout_id"], ondelete="CASCADE"),
)
