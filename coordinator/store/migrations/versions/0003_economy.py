"""The economy: balances, the double-entry ledger, holds, sessions, sign-in nonces, top-ups.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
MONEY = sa.BigInteger


def upgrade() -> None:
    with op.batch_alter_table("accounts") as table:
        table.add_column(sa.Column("email", sa.String(320)))
        table.add_column(sa.Column("oidc_subject", sa.String(300)))
        table.add_column(sa.Column("balance", MONEY, nullable=False, server_default="0"))
        table.add_column(sa.Column("reserved", MONEY, nullable=False, server_default="0"))
        table.create_unique_constraint("uq_accounts_oidc_subject", ["oidc_subject"])
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("spent", MONEY, nullable=False, server_default="0"))
        table.add_column(sa.Column("reserved", MONEY, nullable=False, server_default="0"))
    with op.batch_alter_table("nodes") as table:
        table.add_column(sa.Column("earnings_account_id", sa.Integer))
        table.add_column(sa.Column("model_switched_at", TIMESTAMP))
        table.create_foreign_key(
            "fk_nodes_earnings_account", "accounts", ["earnings_account_id"], ["id"]
        )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False, index=True),
        sa.Column("reference", sa.String(160), unique=True),
        sa.Column("created_at", TIMESTAMP, nullable=False, index=True),
        sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id"), index=True),
        sa.Column("model", sa.String(64)),
        sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("memo", sa.String(200)),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("transaction_id", sa.String(32), sa.ForeignKey("ledger_transactions.id"),
                  nullable=False, index=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("node_id", sa.String(64)),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id")),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False, index=True),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "signin_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("issued_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "topup_invoices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False,
                  index=True),
        sa.Column("reference", sa.String(64), nullable=False, unique=True),
        sa.Column("amount_raw", MONEY, nullable=False),
        sa.Column("credits", MONEY, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("signature", sa.String(100), unique=True),
        sa.Column("paid_raw", MONEY),
        sa.Column("last_error", sa.String(300)),
    )


def downgrade() -> None:
    for name in ("topup_invoices", "signin_nonces", "sessions", "holds", "ledger_entries",
                 "ledger_transactions"):
        op.drop_table(name)
    with op.batch_alter_table("nodes") as table:
        table.drop_constraint("fk_nodes_earnings_account", type_="foreignkey")
        table.drop_column("model_switched_at")
        table.drop_column("earnings_account_id")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("reserved")
        table.drop_column("spent")
    with op.batch_alter_table("accounts") as table:
        table.drop_constraint("uq_accounts_oidc_subject", type_="unique")
        for column in ("reserved", "balance", "oidc_subject", "email"):
            table.drop_column(column)
