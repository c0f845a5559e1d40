"""The database connection: engine, sessions, migrations to the newest schema, and which of
its failures a write may outlast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x6B6F7265  # PostgreSQL advisory lock held while migrating


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # first: the next pragmas may wait for a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A deferred SQLite transaction that reads and then writes can fail with "database is
    # locked" when another writer got in between; taking the write lock up front makes
    # writers queue on busy_timeout instead. (WAL keeps plain reads from blocking each other.)
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; :meth:`open` migrates the schema first."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @classmethod
    async def open(cls, url: str, revision: str = "head") -> Database:
        """Connect to ``url`` and migrate its schema to ``revision``."""
        parsed = make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": True}
        engine = create_async_engine(url, **kwargs)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
        database = cls(engine)
        await database.migrate(revision)
        return database

    async def migrate(self, revision: str = "head") -> None:
        if self.is_sqlite:
            async with self.engine.connect() as connection:
                await connection.run_sync(_upgrade_sqlite, revision)
            return
        async with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # replicas starting at once: one migrates
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            await connection.run_sync(_upgrade, revision)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _upgrade_sqlite(connection: Connection, revision: str) -> None:
    """Migrate with foreign keys off, then check them all at once.

    A batch migration rebuilds a SQLite table (copy, drop, rename), and with foreign keys
    enforced, dropping a table that other rows point at fails: a database with accounts could
    not be upgraded. The pragma only takes effect outside a transaction, hence the raw cursor
    before the migration's transaction begins."""
    raw = connection.connection.dbapi_connection
    assert raw is not None
    _pragma(raw, "PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            _upgrade(connection, revision)
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if dangling:
                raise RuntimeError(f"the migration left rows pointing nowhere: {dangling[:5]}")
    finally:
        _pragma(raw, "PRAGMA foreign_keys=ON")


def _pragma(dbapi_connection: Any, statement: str) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(statement)
    cursor.close()


def is_transient(error: Exception) -> bool:
    """Whether a failed write may succeed unchanged later: the database's trouble (a lost
    connection, a lock timeout), not the data's (a value out of range, a constraint)."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
        if isinstance(original, ValueError | OverflowError | TypeError):  # a bad bound value
            return False
        return isinstance(error, OperationalError)
    return isinstance(error, ConnectionError | TimeoutError | OSError)
