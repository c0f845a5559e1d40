"""Stored responses: a Responses API answer kept for its API key, to continue or read back.

Revision ID: 0009_stored_responses
Revises: 0008_ledger_bounds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_stored_responses"
down_revision = "0008_ledger_bounds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False,
                  index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("conversation", sa.JSON, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stored_responses")
