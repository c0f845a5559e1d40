"""Which database failures a write may outlast: the database's trouble, not the data's."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from coordinator.store.database import is_transient


class _DriverError(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("UPDATE", {}, _DriverError("database is locked")), True),
        (DBAPIError("UPDATE", {}, _DriverError("gone"), connection_invalidated=True), True),
        (IntegrityError("INSERT", {}, _DriverError("UNIQUE constraint failed")), False),
        (OperationalError("INSERT", {}, OverflowError("int too big")), False),
        (DBAPIError("INSERT", {}, ValueError("bad value")), False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("not the database"), False),
    ],
)
def test_only_the_databases_own_trouble_is_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
