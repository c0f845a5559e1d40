"""What a node identity costs: paid jobs only for nodes enrolled to an operator's account, a
daily limit on the new identities an operator enrolls, and none for an operator whose node was
removed for faking its model, for the offender window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.store.models import Enrollment
from coordinator.store.removals import operator_removed_since


@dataclass(frozen=True, slots=True)
class EnrollmentLimits:
    new_nodes_per_day: int
    offender_window: timedelta


def enrollment_refusal(
    enrolled_today: int, removed_recently: bool, limits: EnrollmentLimits
) -> str | None:
    """Why an account may not enroll one more new node now, or None when it may."""
    if removed_recently:
        days = limits.offender_window.total_seconds() / 86_400
        return (
            "this account's node was removed for serving another model than it claimed: it may"
            f" enroll no new node for {days:g} days"
        )
    if enrolled_today >= limits.new_nodes_per_day:
        return (
            f"this account enrolled {enrolled_today} new nodes in the last 24 hours, the most"
            " allowed: enroll this one tomorrow"
        )
    return None


async def new_enrollment_refusal(
    session: AsyncSession, account_id: int, node_id: str, now: datetime, limits: EnrollmentLimits
) -> str | None:
    """:func:`enrollment_refusal` for binding ``node_id`` to the account now."""
    enrolled_today = int(await session.scalar(
        select(func.count(func.distinct(Enrollment.node_id))).where(
            Enrollment.account_id == account_id, Enrollment.node_id.is_not(None),
            Enrollment.node_id != node_id, Enrollment.redeemed_at >= now - timedelta(days=1),
        )
    ) or 0)
    removed = await operator_removed_since(session, account_id, now - limits.offender_window)
    return enrollment_refusal(enrolled_today, removed, limits)
