"""Attack: farm starter credits with fresh wallets (free to make) from one network.

Starter credits are granted once per wallet (signing in again grants nothing) and to at most
``starter_grants_per_day_per_network`` new accounts a day from one IPv4 /24 or IPv6 /64; later
accounts open with none. The books still add up afterwards.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from support.cluster import start_coordinator
from support.wallets import Wallet, sign_in

from coordinator.limits import LimitSettings


async def _balance(http: httpx.AsyncClient, wallet: Wallet) -> int:
    return int((await sign_in(http, wallet))["account"]["balance"]["micro_credits"])

GRANTS = 2


async def test_starter_credits_per_wallet_and_per_network(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        limits=LimitSettings(starter_grants_per_day_per_network=GRANTS,
                             trusted_proxies=("127.0.0.1",)),
    )
    try:
        farm = {"X-Forwarded-For": "2001:db8:99:1::5"}
        async with httpx.AsyncClient(base_url=coordinator.base_url, headers=farm) as http:
            first = Wallet.solders()
            starter = (await sign_in(http, first))["account"]["balance"]["micro_credits"]
            assert starter > 0
            # the same wallet again: no second grant, and no allowance spent
            again = (await sign_in(http, first))["account"]["balance"]["micro_credits"]
            assert again == starter
            balances = []
            for i in range(GRANTS + 2):
                http.headers["X-Forwarded-For"] = f"2001:db8:99:1::{i + 10:x}"
                balances.append(await _balance(http, Wallet.solders()))
            assert balances == [starter] * (GRANTS - 1) + [0] * 3
            # another network still gets them
            http.headers["X-Forwarded-For"] = "2001:db8:99:2::1"
            assert await _balance(http, Wallet.solders()) == starter
    finally:
        await coordinator.stop()
