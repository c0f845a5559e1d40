"""API keys: minted once, shown once, stored only as a hash."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.store.database import Database
from coordinator.store.models import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "ktx-"
SHOWN_PREFIX_LENGTH = 12
LAST_USED_RESOLUTION_S = 60.0


@dataclass(frozen=True, slots=True)
class NewKey:
    secret: str
    prefix: str
    secret_hash: str


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who a presented key belongs to."""

    key_id: int
    account_id: int
    spend_limit: int | None


def mint_key() -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(secret, secret[:SHOWN_PREFIX_LENGTH], hash_secret(secret))


def hash_secret(secret: str) -> str:
    # Keys carry 256 bits of entropy, so a fast unsalted hash is enough to make the table useless
    # to a thief; a slow KDF would only slow down every request.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(
    session: AsyncSession, account_id: int, name: str, now: datetime,
    spend_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key for ``account_id``; returns the row and the secret to show once."""
    new = mint_key()
    row = ApiKey(
        account_id=account_id, prefix=new.prefix, secret_hash=new.secret_hash, name=name,
        spend_limit=spend_limit, created_at=now,
    )
    session.add(row)
    await session.flush()
    return row, new.secret


class KeyAuthenticator:
    """Resolves presented keys to their owner, caching briefly to keep the hot path off the DB."""

    def __init__(self, database: Database, cache_ttl_s: float = 5.0) -> None:
        self._database = database
        self._ttl = cache_ttl_s
        self._cache: dict[str, tuple[float, KeyOwner | None]] = {}
        self._last_used_written: dict[int, float] = {}
        self._touches: set[asyncio.Task[None]] = set()

    async def authenticate(self, secret: str, now: float, wall_now: datetime) -> KeyOwner | None:
        digest = hash_secret(secret)
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self._ttl:
            owner = cached[1]
        else:
            owner = await self._lookup(digest)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (now, owner)
        if owner is not None and now - self._last_used_written.get(owner.key_id, -1e18) > (
            LAST_USED_RESOLUTION_S
        ):
            self._last_used_written[owner.key_id] = now
            # Off the request's path: "last used" is bookkeeping, not worth a write's latency.
            touch = asyncio.create_task(self._touch(owner.key_id, wall_now))
            self._touches.add(touch)
            touch.add_done_callback(self._touches.discard)
        return owner

    async def flush(self) -> None:
        """Wait for the "last used" writes still running."""
        await asyncio.gather(*self._touches, return_exceptions=True)

    def forget(self, secret_hash: str | None = None) -> None:
        """Drop cached answers (all, or one key's) after a key changes."""
        if secret_hash is None:
            self._cache.clear()
        else:
            self._cache.pop(secret_hash, None)

    async def _lookup(self, digest: str) -> KeyOwner | None:
        async with self._database.session() as session:
            row = await session.scalar(
                select(ApiKey).where(ApiKey.secret_hash == digest, ApiKey.revoked_at.is_(None))
            )
        # The lookup is by hash; compare again in constant time so no timing leaks a near match.
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        return KeyOwner(key_id=row.id, account_id=row.account_id, spend_limit=row.spend_limit)

    async def _touch(self, key_id: int, wall_now: datetime) -> None:
        try:
            async with self._database.session() as session, session.begin():
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=wall_now)
                )
        except Exception:
            log.warning("could not record when key %d was last used", key_id, exc_info=True)
