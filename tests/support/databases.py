"""Fresh databases for each test: an SQLite file, or a new PostgreSQL database on the server
given in KORETEX_TEST_POSTGRES_URL (`make test` starts it; without it PostgreSQL tests fail)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from support import required

POSTGRES_URL = os.environ.get("KORETEX_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def fresh_database(backend: str, directory: Path) -> str:
    if backend == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{directory / 'coordinator.db'}"
    server = required.service_url("KORETEX_TEST_POSTGRES_URL", "PostgreSQL")
    name = f"koretex_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(_dsn(server))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    if not url.startswith("postgresql") or POSTGRES_URL is None:
        return
    name = make_url(url).database
    connection = await asyncpg.connect(_dsn(POSTGRES_URL))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
