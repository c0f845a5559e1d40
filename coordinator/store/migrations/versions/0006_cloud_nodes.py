"""Cloud nodes: operators' OpenAI-compatible upstreams, with their tokens sealed.

Revision ID: 0006_cloud_nodes
Revises: 0005_contributions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_cloud_nodes"
down_revision = "0005_contributions"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cloud_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("base_url", sa.String(2000), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("upstream_model", sa.String(200), nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("resume", sa.Boolean, nullable=False, default=False),
        sa.Column("token_sealed", sa.LargeBinary, nullable=False),
        sa.Column("token_last4", sa.String(4), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cloud_nodes")
