"""An account's money over time, a day at a time, for the dashboard's charts.

    GET /v1/account/activity?days=30  (session)
        -> {object, days, data: [{day, earned, spent, calls}]}

Summed in the database by UTC day (the ledger can hold millions of calls; the page gets 30 rows).
Every day of the range is present, empty days as zeros, oldest first.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, case, func, select

from coordinator.accounts.auth import require_session
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.schemas import Amount
from coordinator.accounts.statements import CHARGE, EARNING_KINDS, settled_here
from coordinator.errors import InvalidRequest
from coordinator.json_http import json_reply
from coordinator.store.models import LedgerEntry, LedgerTransaction

MAX_DAYS = 366


class ActivityQuery(BaseModel):
    """``?days=``: how many days back, today included."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=MAX_DAYS)


class DayActivity(BaseModel):
    model_config = ConfigDict(frozen=True)

    day: date
    earned: Amount = Field(description="Provider shares and bounties received that day.")
    spent: Amount = Field(description="Charges for calls made that day.")
    calls: int


class Activity(BaseModel):
    model_config = ConfigDict(frozen=True)

    object: Literal["list"] = "list"
    days: int
    data: list[DayActivity]


def utc_day(column: Any, sqlite: bool) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a UTC timestamp column, in the database's own dialect."""
    if sqlite:  # stored as ISO text in UTC
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def days_of(now: datetime, days: int) -> list[date]:
    today = now.date()
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


async def account_activity(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    raw = request.query.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidRequest(f"days must be a whole number from 1 to {MAX_DAYS}", param="days")
    days = int(raw)
    services = request.app[ACCOUNT_NEEDS]
    await settled_here(services.ledger)
    now = services.clock.now()
    wanted = days_of(now, days)
    since = datetime.combine(wanted[0], datetime.min.time(), tzinfo=now.tzinfo)
    day = utc_day(LedgerTransaction.created_at, services.database.is_sqlite).label("day")
    earning = LedgerEntry.kind.in_(EARNING_KINDS) & (LedgerEntry.amount > 0)
    query = (
        select(
            day,
            func.coalesce(func.sum(case((earning, LedgerEntry.amount), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerEntry.kind == CHARGE, -LedgerEntry.amount),
                                        else_=0)), 0),
            func.count(case((LedgerEntry.kind == CHARGE, 1))),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id, LedgerTransaction.created_at >= since)
        .group_by(day)
    )
    async with services.database.session() as session:
        rows = {str(row[0]): row for row in (await session.execute(query)).all()}
    data = []
    for one in wanted:
        row = rows.get(one.isoformat())
        data.append(DayActivity(
            day=one, earned=Amount.of(int(row[1]) if row else 0),
            spent=Amount.of(int(row[2]) if row else 0), calls=int(row[3]) if row else 0,
        ))
    return json_reply(Activity(days=days, data=data))


def add_activity_routes(app: web.Application) -> None:
    app.router.add_get("/v1/account/activity", account_activity)
