"""Bounties: each model's current payout multiplier, written by one leader under its epoch.

Revision ID: 0007_bounties
Revises: 0006_cloud_nodes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_bounties"
down_revision = "0006_cloud_nodes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounties",
        sa.Column("model", sa.String(64), primary_key=True),
        sa.Column("multiplier", sa.Double, nullable=False),
        sa.Column("demand_tok_s", sa.Double, nullable=False),
        sa.Column("capacity_tok_s", sa.Double, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bounties")
