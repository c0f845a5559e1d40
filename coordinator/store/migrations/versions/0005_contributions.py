"""The points history: append-only contributions.

Revision ID: 0005_contributions
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_contributions"
down_revision = "0004"
branch_labels = None
depends_on = None

REFUSAL = "contributions are append-only"


def upgrade() -> None:
    op.create_table(
        "contributions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.Double, nullable=False, index=True),
        sa.Column("model", sa.String(64)),
        sa.Column("flag", sa.Boolean),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("amount", sa.Double),
        sa.Column("reason", sa.String(200)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Recomputing points from scratch is only sound if nothing recorded ever changes.
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER contributions_no_{action.lower()} BEFORE {action} "
                f"ON contributions BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION contributions_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER contributions_append_only BEFORE UPDATE OR DELETE ON contributions "
            "FOR EACH ROW EXECUTE FUNCTION contributions_refuse()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER contributions_append_only ON contributions")
        op.execute("DROP FUNCTION contributions_refuse()")
    op.drop_table("contributions")
