"""Signed-in sessions: bearer tokens for the dashboard and the account API, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.errors import AuthenticationFailed
from coordinator.store.database import Database
from coordinator.store.models import Session, SignInNonce

SESSION_PREFIX = "kts-"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(
    session: AsyncSession, account_id: int, now: datetime, ttl: timedelta
) -> str:
    """Create a session for the account; returns the bearer token (shown once)."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    await session.execute(insert(Session).values(
        token_hash=hash_token(token), account_id=account_id, created_at=now,
        expires_at=now + ttl,
    ))
    return token


async def session_account(database: Database, token: str, now: datetime) -> int | None:
    """The account a live session token belongs to, or None."""
    async with database.session() as session:
        row = await session.execute(
            select(Session.account_id, Session.expires_at)
            .where(Session.token_hash == hash_token(token))
        )
        found = row.first()
    if found is None or found[1] <= now:
        return None
    return int(found[0])


async def close_session(database: Database, token: str) -> None:
    async with database.session() as session, session.begin():
        await session.execute(delete(Session).where(Session.token_hash == hash_token(token)))


async def consume_sign_in_nonce(
    session: AsyncSession, nonce: str, address: str, now: datetime
) -> None:
    """Use up a sign-in nonce issued to ``address``; raises AuthenticationFailed if it is not
    there to use. One conditional DELETE: of any number of replicas racing with the same
    message, exactly one sees a row go."""
    consumed = await session.execute(delete(SignInNonce).where(
        SignInNonce.nonce == nonce, SignInNonce.address == address,
        SignInNonce.expires_at > now,
    ))
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        raise AuthenticationFailed(
            "sign-in nonce already used, expired or never issued to this address: "
            "ask for a new one"
        )
