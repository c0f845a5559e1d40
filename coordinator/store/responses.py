"""Stored Responses API answers, each readable only with the API key that stored it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from coordinator.store.database import Database
from coordinator.store.models import StoredResponse


async def save_response(
    database: Database, *, response_id: str, api_key_id: int, now: datetime, expires: datetime,
    conversation: list[dict[str, Any]], body: dict[str, Any],
) -> None:
    """Store one answer, and drop every stored answer past its retention."""
    async with database.session() as session, session.begin():
        await session.execute(delete(StoredResponse).where(StoredResponse.expires_at <= now))
        session.add(StoredResponse(
            id=response_id, api_key_id=api_key_id, created_at=now, expires_at=expires,
            conversation=conversation, body=body,
        ))


async def load_response(
    database: Database, response_id: str, api_key_id: int, now: datetime
) -> StoredResponse | None:
    """The answer ``response_id`` stored with this key and not yet expired; None otherwise
    (another key's answer is as absent as a missing one)."""
    async with database.session() as session:
        row = await session.scalar(select(StoredResponse).where(
            StoredResponse.id == response_id, StoredResponse.api_key_id == api_key_id,
            StoredResponse.expires_at > now,
        ))
        return row


async def delete_response(database: Database, response_id: str, api_key_id: int) -> bool:
    async with database.session() as session, session.begin():
        deleted = await session.execute(delete(StoredResponse).where(
            StoredResponse.id == response_id, StoredResponse.api_key_id == api_key_id,
        ))
        return bool(deleted.rowcount)  # type: ignore[attr-defined]
