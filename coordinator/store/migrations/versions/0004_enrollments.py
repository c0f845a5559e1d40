"""Node enrollment tokens, and an index to sum a node's earnings.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "enrollments",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False, index=True),
        sa.Column("redeemed_at", TIMESTAMP),
        sa.Column("node_id", sa.String(64)),
    )
    op.create_index("ix_ledger_entries_node_id", "ledger_entries", ["node_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_node_id", table_name="ledger_entries")
    op.drop_table("enrollments")
