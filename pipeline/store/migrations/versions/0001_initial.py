"""The original schema, exactly as `metadata.create_all` made it before migrations existed.

A database that `create_all` made has these tables but no `alembic_version`: this revision then
creates only the tables that are missing (none, or the ones a crashed first start left out), so
such a database is adopted as revision 0001 with its rows untouched.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, list[sa.Column]]:
    return {
        "runs": [
            sa.Column("job_id", sa.String(200), primary_key=True),
            sa.Column("date", sa.Date, nullable=False, index=True),
            sa.Column("trigger", sa.String(20), nullable=False),
            sa.Column("worker_id", sa.String(200)),
            sa.Column("items", sa.Integer, nullable=False),
            sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        ],
        "flashpoints": [
            sa.Column("date", sa.Date, primary_key=True),
            sa.Column("flashpoint_id", sa.String(200), primary_key=True),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("documents", sa.Integer, nullable=False),
            sa.Column("words", sa.Integer, nullable=False),
            sa.Column("centroid", sa.LargeBinary),
            sa.Column("job_id", sa.String(200)),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ],
        "documents": [
            sa.Column("date", sa.Date, primary_key=True),
            sa.Column("flashpoint_id", sa.String(200), primary_key=True),
            sa.Column("source_key", sa.String(8192), primary_key=True),
            sa.Column("source_index", sa.Integer, nullable=False),
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
        ],
    }


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns)


def downgrade() -> None:
    for name in ("documents", "flashpoints", "runs"):
        op.drop_table(name)
