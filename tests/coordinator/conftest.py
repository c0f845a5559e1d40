"""Tests that run several replicas (bus, shared limits) need the shared servers: a fresh PostgreSQL
database and Redis (fail without)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from support import required
from support.databases import drop_database, fresh_database


@pytest_asyncio.fixture
async def shared_database(tmp_path: Path) -> AsyncIterator[str]:
    required.service_url("KORETEX_TEST_POSTGRES_URL", "PostgreSQL")
    required.service_url("KORETEX_TEST_REDIS_URL", "Redis")
    url = await fresh_database("postgres", tmp_path / "db")
    try:
        yield url
    finally:
        await drop_database(url)
