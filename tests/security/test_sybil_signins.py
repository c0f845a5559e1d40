"""Attack: sign in (and mint credentials) without end by rotating addresses inside one network.

One host holds a whole IPv6 /64; the sign-in limit used to key on the full address, so every
request from a fresh address of the /64 had a fresh bucket. It now keys on the /64 (IPv4: /24).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from support.cluster import RunningCoordinator, start_coordinator
from support.wallets import Wallet

from coordinator.limits import LimitSettings

LIMIT = 4


@pytest_asyncio.fixture
async def behind_proxy(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        limits=LimitSettings(auth_requests_per_minute_per_ip=LIMIT, trusted_proxies=("127.0.0.1",)),
    )
    try:
        yield coordinator
    finally:
        await coordinator.stop()


async def _nonce_statuses(http: httpx.AsyncClient, addresses: list[str]) -> list[int]:
    wallet = Wallet.solders()
    return [
        (await http.post("/v1/auth/siws/nonce", json={"address": wallet.address},
                         headers={"X-Forwarded-For": address})).status_code
        for address in addresses
    ]


async def test_rotating_ipv6_addresses_in_one_slash_64(behind_proxy: RunningCoordinator) -> None:
    rotating = [f"2001:db8:7:7::{i:x}" for i in range(1, LIMIT + 3)]
    async with httpx.AsyncClient(base_url=behind_proxy.base_url) as http:
        assert await _nonce_statuses(http, rotating) == [200] * LIMIT + [429, 429]
        # the IPv4-mapped form of a /24 is the same network as its plain form
        v4 = [f"203.0.113.{i}" for i in range(1, LIMIT)] + ["::ffff:203.0.113.77"] * 2
        assert await _nonce_statuses(http, v4) == [200] * LIMIT + [429]
        # a neighbouring /64 is another network
        assert await _nonce_statuses(http, ["2001:db8:7:8::1"]) == [200]


async def test_forged_forwarded_for_from_an_untrusted_peer(
    tmp_path: Path, database_url: str
) -> None:
    """Without a trusted proxy the header is ignored: the peer (loopback) is the client."""
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        limits=LimitSettings(auth_requests_per_minute_per_ip=2),
    )
    try:
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            forged = [f"2001:db8:{i:x}::1" for i in range(4)]
            assert await _nonce_statuses(http, forged) == [200, 200, 429, 429]
    finally:
        await coordinator.stop()
