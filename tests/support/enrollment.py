"""Signed-in accounts and enrollment tokens on a running coordinator, for tests."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import aiohttp
import base58

from coordinator.accounts.accounts import open_account
from coordinator.accounts.sessions import open_session
from support.cluster import RunningCoordinator


def new_wallet() -> str:
    return base58.b58encode(secrets.token_bytes(32)).decode()


async def signed_in(coordinator: RunningCoordinator, wallet: str | None = None) -> tuple[int, str]:
    """An account (as sign-in would open it, without starter credits) and a session token."""
    services = coordinator.services
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        account = await open_account(
            session, services.ledger.books, now, 0, wallet=wallet or new_wallet()
        )
        token = await open_session(session, account.id, now, timedelta(hours=1))
    return account.id, token


async def mint(coordinator: RunningCoordinator, session_token: str) -> dict[str, Any]:
    """``POST /v1/account/enrollments`` as the signed-in account: token, expiry, command."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{coordinator.base_url}/v1/account/enrollments",
        headers={"Authorization": f"Bearer {session_token}"},
    ) as response:
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body
