"""API keys are limited per account: past ``keys_per_day_per_account`` an account's next key is a
429 with Retry-After, while another account still mints (real coordinator, real sign-in)."""

from __future__ import annotations

from pathlib import Path

import httpx
from support.cluster import start_coordinator
from support.wallets import Wallet, bearer, sign_in

from coordinator.settings.limits import LimitSettings


async def test_an_account_mints_at_most_its_daily_keys(tmp_path: Path, database_url: str) -> None:
    coordinator = await start_coordinator(
        tmp_path, database_url=database_url, limits=LimitSettings(keys_per_day_per_account=2),
    )
    try:
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            first = (await sign_in(http, Wallet.solders()))["token"]
            for name in ("a", "b"):
                minted = await http.post("/v1/account/keys", json={"name": name},
                                         headers=bearer(first))
                assert minted.status_code == 201, minted.text
            refused = await http.post("/v1/account/keys", json={"name": "c"},
                                      headers=bearer(first))
            assert refused.status_code == 429
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert int(refused.headers["Retry-After"]) > 0
            listed = await http.get("/v1/account/keys", headers=bearer(first))
            assert len(listed.json()["data"]) == 2
            second = (await sign_in(http, Wallet.solders()))["token"]
            other = await http.post("/v1/account/keys", json={"name": "a"},
                                    headers=bearer(second))
            assert other.status_code == 201
    finally:
        await coordinator.stop()
