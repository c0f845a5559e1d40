"""An existing database upgrades in place: rows written under the first schema survive every
migration, on SQLite (whose batch migrations rebuild tables others point at) and PostgreSQL,
and foreign keys are enforced again afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from coordinator.store.database import Database
from coordinator.store.models import Account, ApiKey, Node


async def test_a_database_with_accounts_keys_and_nodes_upgrades_to_the_latest_schema(
    database_url: str,
) -> None:
    first = await Database.open(database_url, revision="0001")
    async with first.session() as session, session.begin():
        await session.execute(text(
            "INSERT INTO accounts (id, kind, label, created_at)"
            " VALUES (1, 'consumer', 'early', '2026-01-01 00:00:00+00:00')"
        ))
        await session.execute(text(
            "INSERT INTO api_keys (id, account_id, prefix, secret_hash, name, created_at)"
            " VALUES (1, 1, 'ktx-early', :hash, 'first key', '2026-01-01 00:00:00+00:00')"
        ), {"hash": "0" * 64})
        await session.execute(text(
            "INSERT INTO nodes (node_id, operator_account_id, first_seen, last_seen, engine,"
            " models, hardware) VALUES ('node-early', 1, '2026-01-01 00:00:00+00:00',"
            " '2026-01-02 00:00:00+00:00', 'llama.cpp', '[]', '{}')"
        ))
    await first.close()

    latest = await Database.open(database_url)
    try:
        async with latest.session() as session:
            account = await session.scalar(select(Account).where(Account.label == "early"))
            key = await session.scalar(select(ApiKey).where(ApiKey.name == "first key"))
            node = await session.get(Node, "node-early")
        assert account is not None and account.balance == 0 and account.reserved == 0
        assert key is not None and key.account_id == account.id and key.spent == 0
        assert node is not None and node.operator_account_id == account.id
        with pytest.raises(IntegrityError):  # foreign keys are enforced again
            async with latest.session() as session, session.begin():
                await session.execute(text(
                    "INSERT INTO api_keys (account_id, prefix, secret_hash, name, created_at)"
                    " VALUES (999, 'ktx-x', :hash, 'orphan', '2026-01-01 00:00:00+00:00')"
                ), {"hash": "1" * 64})
    finally:
        await latest.close()


async def test_a_negative_balance_from_an_earlier_version_is_written_off_before_the_check(
    database_url: str,
) -> None:
    from coordinator.economy.ledger import ensure_system_books
    from coordinator.store.models import LedgerEntry, LedgerTransaction

    first = await Database.open(database_url, revision="0007_bounties")
    async with first.session() as session, session.begin():
        await session.execute(text(
            "INSERT INTO accounts (id, kind, label, created_at, balance, reserved) VALUES"
            " (100, 'system', 'system:issuance', '2026-01-01 00:00:00+00:00', -500, 0),"
            " (101, 'user', 'overdrawn', '2026-01-01 00:00:00+00:00', -200, 0),"
            " (102, 'node', 'earner', '2026-01-01 00:00:00+00:00', 700, 0)"
        ))
    await first.close()

    latest = await Database.open(database_url)
    try:
        books = await ensure_system_books(latest, datetime.now(UTC))
        assert books.issuance == 100
        async with latest.session() as session:
            balances = dict((await session.execute(
                select(Account.id, Account.balance).where(Account.id.in_([100, 101, 102]))
            )).all())
            writeoff = await session.scalar(
                select(LedgerTransaction.id).where(LedgerTransaction.kind == "writeoff")
            )
            entries = (await session.execute(
                select(LedgerEntry.account_id, LedgerEntry.amount)
                .where(LedgerEntry.transaction_id == writeoff)
            )).all()
        assert balances == {100: -700, 101: 0, 102: 700}  # still adds up to what was issued
        assert sorted(entries) == [(100, -200), (101, 200)]
        with pytest.raises(IntegrityError):  # and from now on the database refuses it
            async with latest.session() as session, session.begin():
                await session.execute(text("UPDATE accounts SET balance = -1 WHERE id = 102"))
    finally:
        await latest.close()
