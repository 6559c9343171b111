"""The chunk ledger: `fanouts` (one row per fan-out) and `fanout_chunks` (one row per chunk).

A coordinator records each chunk's items (input positions, or a reference into `items_from`),
state, attempt, the sibling job id of every attempt, the claim of the current attempt and the
chunk's outcome, so a coordinator that lost its worker resumes instead of starting over and a
duplicate sibling does no work (`pipeline/store/ledger.py`). Additive: new tables only, so workers
of the previous image keep running against this schema.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fanouts",
        sa.Column("fanout_id", sa.String(200), primary_key=True),
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("summary", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "fanout_chunks",
        sa.Column("fanout_id", sa.String(200), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("positions", sa.JSON),
        sa.Column("ref", sa.JSON),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("sibling_ids", sa.JSON, nullable=False),
        sa.Column("claimed_by", sa.String(200)),
        sa.Column("claimed_at", sa.DateTime(timezone=True)),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("outcome", sa.JSON),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["fanout_id"], ["fanouts.fanout_id"], ondelete="CASCADE"),
    )


def downgrade() -> None:
    op.drop_table("fanout_chunks")
    op.drop_table("fanouts")
