"""Settled calls per second through the ledger: hold, then batched settlement.

Each simulated call does what the gateway does for a paid request: one atomic hold of its
worst-case cost, then a queued settlement of the tokens delivered (revenue share to a node,
platform and bounty pool). 64 concurrent callers, on SQLite and on PostgreSQL when
KORETEX_TEST_POSTGRES_URL names a server (``scripts/test_services.sh start`` prints one).
Target: at least 2,000 settled calls/s on PostgreSQL on a 2-core machine.

``bench/run_all.py`` starts the servers; alone, ``set -a; eval "$(scripts/test_services.sh
start)"; set +a`` first. ``--quick``: one second per database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import harness  # the repository on the path
from rich.console import Console
from rich.table import Table
from support.databases import drop_database, fresh_database
from support.ledger_audit import audit

from coordinator.accounts.accounts import node_earnings_account, open_account
from coordinator.clock import SystemClock
from coordinator.economy.ledger import Ledger, ensure_system_books
from coordinator.economy.postings import ServingNode
from coordinator.economy.settlement import CallSettlement
from coordinator.settings.economy import EconomySettings
from coordinator.store.database import Database

CALLERS = 64
DURATION_S = 6.0
TARGET = 2000


async def measure(url: str) -> tuple[float, int]:
    clock = SystemClock()
    database = await Database.open(url)
    settings = EconomySettings(bounty_multipliers={"gemma-3-270m": 1.2})
    books = await ensure_system_books(database, clock.now())
    ledger = Ledger(database, settings, clock, books)
    async with database.session() as session, session.begin():
        accounts = [
            (await open_account(session, books, clock.now(), 10**12, label=f"bench-{i}")).id
            for i in range(CALLERS)
        ]
        node_accounts = [
            await node_earnings_account(session, f"node-{i}", clock.now()) for i in range(8)
        ]
    calls = 0
    deadline = time.perf_counter() + DURATION_S

    async def caller(index: int) -> None:
        nonlocal calls
        account = accounts[index]
        n = 0
        while time.perf_counter() < deadline:
            hold = await ledger.reserve(account, 2_000)
            ledger.settle(CallSettlement(
                reference=f"call:bench-{index}-{n}", account_id=account, api_key_id=None,
                hold_id=hold, hold_amount=2_000, cost=1_370, model="gemma-3-270m",
                prompt_tokens=25, completion_tokens=56,
                nodes=(ServingNode(f"node-{n % 8}", node_accounts[n % 8], 56, 0.5, 0.0),),
                bounty_multiplier=1.2,
            ))
            n += 1
            calls += 1

    began = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(CALLERS)))
    await ledger.flush()
    elapsed = time.perf_counter() - began
    result = await audit(database, 0, 0)
    assert result.unbalanced_transactions == 0 and result.balance_mismatches == 0
    assert result.held_by_accounts == result.minted and result.open_holds == 0
    await ledger.close()
    await database.close()
    return calls / elapsed, calls


async def main() -> None:
    global DURATION_S
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        DURATION_S = 1.0
    rates: dict[str, float] = {}
    backends = ["sqlite"] + (["postgres"] if os.environ.get("KORETEX_TEST_POSTGRES_URL") else [])
    table = Table(title=f"Settled calls/s, {CALLERS} concurrent callers (target ≥ {TARGET}/s "
                        "on PostgreSQL)")
    for column in ("database", "calls", "calls/s", "vs target", "vs SQLite"):
        table.add_column(column, justify="right")
    sqlite_rate = None
    with tempfile.TemporaryDirectory() as scratch:
        for backend in backends:
            url = await fresh_database(backend, Path(scratch) / backend)
            try:
                rate, calls = await measure(url)
            finally:
                await drop_database(url)
            rates[backend] = rate
            sqlite_rate = sqlite_rate or rate
            table.add_row(backend, f"{calls:,}", f"{rate:,.0f}", f"{rate / TARGET:.2f}×",
                          f"{rate / sqlite_rate:.2f}×")
    Console().print(table)
    if len(backends) == 1:
        print("PostgreSQL not measured: set KORETEX_TEST_POSTGRES_URL "
              "(scripts/test_services.sh start)")
    target = f">= {TARGET:,} settled calls/s on PostgreSQL"
    if "postgres" in rates:
        harness.report("ledger", target, f"{rates['postgres']:,.0f} calls/s",
                       rates["postgres"] >= TARGET, quick=args.quick)
    else:
        harness.report("ledger", target, f"{rates['sqlite']:,.0f} calls/s on SQLite "
                       "(PostgreSQL not running)", None, quick=args.quick)


if __name__ == "__main__":
    harness.use_uvloop()
    asyncio.run(main())
