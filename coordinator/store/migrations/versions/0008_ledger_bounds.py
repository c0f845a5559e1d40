"""Ledger bounds: token counts in BIGINT columns, and no account but a system book below zero.

A balance that went negative under an earlier version (an expired hold settled in full) is
written off first, by a recorded transaction from the issuance book, so the ledger still adds
up to what was issued.

Revision ID: 0008_ledger_bounds
Revises: 0007_bounties
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008_ledger_bounds"
down_revision = "0007_bounties"
branch_labels = None
depends_on = None

BALANCE_CHECK = "ck_accounts_balance_not_negative"
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens")

_accounts = sa.table(
    "accounts", sa.column("id", sa.Integer), sa.column("kind", sa.String),
    sa.column("label", sa.String), sa.column("balance", sa.BigInteger),
)
_transactions = sa.table(
    "ledger_transactions", sa.column("id", sa.String), sa.column("kind", sa.String),
    sa.column("reference", sa.String), sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("memo", sa.String), sa.column("prompt_tokens", sa.BigInteger),
    sa.column("completion_tokens", sa.BigInteger),
)
_entries = sa.table(
    "ledger_entries", sa.column("transaction_id", sa.String), sa.column("account_id", sa.Integer),
    sa.column("amount", sa.BigInteger), sa.column("kind", sa.String),
)


def _write_off_negative_balances() -> None:
    bind = op.get_bind()
    negative = bind.execute(
        sa.select(_accounts.c.id, _accounts.c.balance)
        .where(_accounts.c.kind != "system", _accounts.c.balance < 0).order_by(_accounts.c.id)
    ).all()
    if not negative:
        return
    issuer = bind.execute(
        sa.select(_accounts.c.id).where(_accounts.c.label == "system:issuance")
    ).scalar()
    if issuer is None:
        raise RuntimeError("negative balances but no issuance book to write them off from")
    now = datetime.now(UTC)
    for account_id, balance in negative:
        transaction_id = secrets.token_hex(16)
        bind.execute(sa.insert(_transactions).values(
            id=transaction_id, kind="writeoff", reference=f"writeoff:0008:{account_id}",
            created_at=now, memo="negative balance written off (expired hold settled in full)",
            prompt_tokens=0, completion_tokens=0,
        ))
        bind.execute(sa.insert(_entries), [
            {"transaction_id": transaction_id, "account_id": issuer, "amount": balance,
             "kind": "writeoff"},
            {"transaction_id": transaction_id, "account_id": account_id, "amount": -balance,
             "kind": "writeoff"},
        ])
        for target, delta in ((issuer, balance), (account_id, -balance)):
            bind.execute(sa.update(_accounts).where(_accounts.c.id == target)
                         .values(balance=_accounts.c.balance + delta))


def upgrade() -> None:
    _write_off_negative_balances()
    with op.batch_alter_table("ledger_transactions") as table:
        for column in TOKEN_COLUMNS:
            table.alter_column(column, type_=sa.BigInteger, existing_type=sa.Integer,
                               existing_nullable=False, existing_server_default="0")
    with op.batch_alter_table("accounts") as table:
        table.create_check_constraint(BALANCE_CHECK, "kind = 'system' OR balance >= 0")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as table:
        table.drop_constraint(BALANCE_CHECK, type_="check")
    with op.batch_alter_table("ledger_transactions") as table:
        for column in TOKEN_COLUMNS:
            table.alter_column(column, type_=sa.Integer, existing_type=sa.BigInteger,
                               existing_nullable=False, existing_server_default="0")
