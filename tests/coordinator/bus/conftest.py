"""Replicas need the shared servers: a fresh PostgreSQL database and Redis (skip without)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from support.databases import POSTGRES_URL, drop_database, fresh_database
from support.replicas import REDIS_URL


@pytest_asyncio.fixture
async def shared_database(tmp_path: Path) -> AsyncIterator[str]:
    if POSTGRES_URL is None or REDIS_URL is None:
        pytest.skip("replicas need KORETEX_TEST_POSTGRES_URL and KORETEX_TEST_REDIS_URL")
    url = await fresh_database("postgres", tmp_path / "db")
    try:
        yield url
    finally:
        await drop_database(url)
