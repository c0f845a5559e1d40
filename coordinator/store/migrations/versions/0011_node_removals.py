"""Node removals: a node removed for faking its model, at once and on every replica, and the
operator it was enrolled to (who may enroll no new node for the offender window).

Revision ID: 0011_node_removals
Revises: 0010_catalogue
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_node_removals"
down_revision = "0010_catalogue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_removals",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("operator_account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=True,
                  index=True),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("reason", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_removals")
