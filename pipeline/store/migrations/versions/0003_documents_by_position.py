"""Key documents by the source's position in its flashpoint, not by its URL.

Under the old key (date, flashpoint_id, source_key = URL) two sources with one URL were one row
while the job reported two documents, and PostgreSQL refused URLs longer than a btree entry
(about 2,700 bytes) for every item of the load. The new key is (date, flashpoint_id,
source_index); `source_key` stays as a plain column.

A load before this revision upserted a flashpoint's documents without removing those the new run
no longer had, so a re-run with fewer sources left stale rows behind, older than their flashpoint
row and not counted in its `documents`. They may collide on the new key, so they are dropped here
(the count is logged); every other row is copied unchanged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_COLUMNS = (
    "date, flashpoint_id, source_index, source_key, url, final_url, http_status, title, text, "
    "word_count, content_hash, duplicate_of, near_duplicate_of, is_near_duplicate, relevance, "
    "embedding, links, updated_at, embedding_model, embedding_dim"
)

_STALE = (
    "EXISTS (SELECT 1 FROM flashpoints f WHERE f.date = documents.date"
    " AND f.flashpoint_id = documents.flashpoint_id AND f.updated_at > documents.updated_at)"
)


def _columns(source_key: sa.types.TypeEngine) -> list[sa.Column]:
    return [
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("flashpoint_id", sa.String(200), nullable=False),
        sa.Column("source_index", sa.Integer, nullable=False),
        sa.Column("source_key", source_key, nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("final_url", sa.Text),
        sa.Column("http_status", sa.Integer),
        sa.Column("title", sa.Text),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("word_count", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("duplicate_of", sa.Integer),
        sa.Column("near_duplicate_of", sa.Integer),
        sa.Column("is_near_duplicate", sa.Boolean, nullable=False),
        sa.Column("relevance", sa.Float),
        sa.Column("embedding", sa.LargeBinary),
        sa.Column("links", sa.JSON),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("embedding_model", sa.String(200)),
        sa.Column("embedding_dim", sa.Integer),
    ]


def _rebuild(source_key: sa.types.TypeEngine, key: tuple[str, ...]) -> None:
    """Copy `documents` into a table with the new key, then put it in the old one's place."""
    postgres = op.get_bind().dialect.name == "postgresql"
    pk_name = "documents_new_pkey" if postgres else None  # SQLite cannot rename it afterwards
    op.create_table(
        "documents_new", *_columns(source_key), sa.PrimaryKeyConstraint(*key, name=pk_name)
    )
    op.execute(f"INSERT INTO documents_new ({_COLUMNS}) SELECT {_COLUMNS} FROM documents")
    op.drop_table("documents")
    op.rename_table("documents_new", "documents")
    if postgres:
        op.execute("ALTER TABLE documents RENAME CONSTRAINT documents_new_pkey TO documents_pkey")


def upgrade() -> None:
    stale = op.get_bind().execute(sa.text(f"DELETE FROM documents WHERE {_STALE}")).rowcount
    if stale:
        log.warning(
            "0003: dropped %d stale document rows left by re-runs with fewer sources", stale
        )
    _rebuild(sa.Text(), ("date", "flashpoint_id", "source_index"))


def downgrade() -> None:
    # The old key cannot hold two sources with one URL: keep the first of each.
    op.execute(
        "DELETE FROM documents WHERE EXISTS (SELECT 1 FROM documents d"
        " WHERE d.date = documents.date"
        " AND d.flashpoint_id = documents.flashpoint_id AND d.source_key = documents.source_key"
        " AND d.source_index < documents.source_index)"
    )
    _rebuild(sa.String(8192), ("date", "flashpoint_id", "source_key"))
