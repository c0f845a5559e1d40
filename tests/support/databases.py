"""Fresh databases for each test: an SQLite file, or a new PostgreSQL database when a server is
given in KORETEX_TEST_POSTGRES_URL (CI always gives one; `make test` starts it)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("KORETEX_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]

if os.environ.get("CI") and not POSTGRES_URL:
    raise RuntimeError("CI must run the suite on PostgreSQL too: set KORETEX_TEST_POSTGRES_URL")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fresh_database(backend: str, directory: Path) -> str:
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{directory / 'coordinator.db'}"
    assert POSTGRES_URL is not None
    name = f"koretex_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_dsn(POSTGRES_URL))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    if not url.startswith("postgresql") or POSTGRES_URL is None:
        return
    name = make_url(url).database
    connection = await asyncpg.connect(_dsn(POSTGRES_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
