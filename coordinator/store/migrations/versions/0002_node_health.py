"""Persisted node health buckets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_health",
        sa.Column("node_id", sa.String(64), sa.ForeignKey("nodes.node_id"), primary_key=True),
        sa.Column("bucket_start", sa.BigInteger, primary_key=True),
        sa.Column("successes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("neutrals", sa.Integer, nullable=False, server_default="0"),
        sa.Column("probe_successes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("probe_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("online_s", sa.Float, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("node_health")
