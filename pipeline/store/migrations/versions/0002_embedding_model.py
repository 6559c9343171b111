"""Record which embedding model (name and dimension) made each stored vector.

`documents.embedding` and `flashpoints.centroid` gain `embedding_model` and `embedding_dim`. Rows
stored before this revision keep their vectors; their dimension is known from the blob's length
(float32: 4 bytes a component), their model is not: `embedding_model` stays NULL, which
`vectors.py` treats as "unknown model", never equal to a named one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_VECTOR = {"documents": "embedding", "flashpoints": "centroid"}


def upgrade() -> None:
    length = "octet_length" if op.get_bind().dialect.name == "postgresql" else "length"
    for table, vector in _VECTOR.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("embedding_model", sa.String(200)))
            batch.add_column(sa.Column("embedding_dim", sa.Integer))
        op.execute(
            f"UPDATE {table} SET embedding_dim = {length}({vector}) / 4 WHERE {vector} IS NOT NULL"
        )


def downgrade() -> None:
    for table in _VECTOR:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("embedding_dim")
            batch.drop_column("embedding_model")
