"""Enrolling nodes: one-time tokens that bind a node's key to the account that minted them.

A signed-in account mints a short-lived token (shown once, stored hashed) and pastes the install
command it comes with on the machine; the node presents the token when it registers, signed with
its own key. The coordinator redeems the token atomically, binds the node to the account and moves
any pay the node collected before into the account with a recorded transfer. The account's own
secret (a wallet's key, a session) never reaches the node.

The node keeps the token in its config and presents it on every reconnect: the node that redeemed
a token may present it again (even after it expired); nobody else may.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.accounts.identity import EnrollmentLimits, new_enrollment_refusal
from coordinator.economy.ledger import record
from coordinator.economy.postings import Posting
from coordinator.store.models import Account, Enrollment, LedgerEntry, Node

TOKEN_PREFIX = "kte-"
EARNING_KINDS = ("provider_share", "bounty")
TRANSFER_KIND = "earnings_transfer"


class EnrollmentRefused(Exception):
    """The token cannot enroll this node; ``reason`` is shown to the node's operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MintedEnrollment:
    token: str
    expires_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def install_command(public_url: str, token: str) -> str:
    """The one line an operator pastes on the machine that will become their node."""
    base = public_url.rstrip("/")
    return (
        f"curl -fsSL {shlex.quote(base + '/install.sh')} | sh -s -- "
        f"--token {shlex.quote(token)} --coordinator {shlex.quote(base)}"
    )


def transfer_postings(source: int, target: int, amount: int, node_id: str) -> list[Posting]:
    """Pay a node collected in its own account, moved to the operator who enrolled it."""
    return [
        Posting(source, -amount, TRANSFER_KIND, node_id),
        Posting(target, amount, TRANSFER_KIND, node_id),
    ]


async def mint(
    session: AsyncSession, account_id: int, now: datetime, ttl: timedelta
) -> MintedEnrollment:
    """A new token for the account; only its hash is stored."""
    # Tokens nobody redeemed are useless once expired; sweeping them keeps the table small.
    await session.execute(delete(Enrollment).where(
        Enrollment.expires_at <= now, Enrollment.redeemed_at.is_(None)
    ))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await session.execute(insert(Enrollment).values(
        token_hash=hash_token(token), account_id=account_id, created_at=now,
        expires_at=now + ttl, redeemed_at=None, node_id=None,
    ))
    return MintedEnrollment(token, now + ttl)


async def redeem(session: AsyncSession, token: str, node_id: str, now: datetime) -> int:
    """The account the token enrolls ``node_id`` for; raises :class:`EnrollmentRefused`."""
    token_hash = hash_token(token)
    # One conditional UPDATE: of any number of nodes (or replicas) racing with the same token,
    # exactly one sees the row change.
    claimed = (await session.execute(
        update(Enrollment)
        .where(Enrollment.token_hash == token_hash, Enrollment.redeemed_at.is_(None),
               Enrollment.expires_at > now)
        .values(redeemed_at=now, node_id=node_id)
        .returning(Enrollment.account_id)
    )).first()
    if claimed is not None:
        return int(claimed[0])
    found = (await session.execute(
        select(Enrollment.account_id, Enrollment.node_id, Enrollment.redeemed_at)
        .where(Enrollment.token_hash == token_hash)
    )).first()
    if found is None:
        raise EnrollmentRefused("unknown enrollment token: mint a new one from your account")
    account_id, redeemed_by, redeemed_at = found
    if redeemed_by == node_id:
        return int(account_id)  # this node again: a reconnect or a restart
    if redeemed_at is not None:
        raise EnrollmentRefused(
            "enrollment token already used by another node: mint a new one for this machine"
        )
    raise EnrollmentRefused("enrollment token expired: mint a new one from your account")


async def enroll(
    session: AsyncSession, node: Node, token: str, now: datetime,
    limits: EnrollmentLimits | None = None,
) -> int:
    """Redeem ``token`` and bind ``node`` to its account; raises :class:`EnrollmentRefused`.

    Runs in the registration's transaction: a refusal rolls the redemption back. ``limits``
    apply when the node is new to the account (not on a reconnect).
    """
    account_id = await redeem(session, token, node.node_id, now)
    if node.operator_account_id is not None and node.operator_account_id != account_id:
        raise EnrollmentRefused(
            "this node is already enrolled by another account: its key cannot change hands"
        )
    if node.operator_account_id is None and limits is not None:
        refusal = await new_enrollment_refusal(session, account_id, node.node_id, now, limits)
        if refusal is not None:
            raise EnrollmentRefused(refusal)
    node.operator_account_id = account_id
    await session.flush()
    return account_id


async def sweep_earnings(session: AsyncSession, node: Node, now: datetime) -> int:
    """Move what the node's own earnings account holds to its operator; returns the amount."""
    source, target = node.earnings_account_id, node.operator_account_id
    if source is None or target is None or source == target:
        return 0
    # Lock both rows in id order, the order settlement batches lock them in: no deadlock.
    rows = (await session.execute(
        select(Account.id, Account.balance, Account.reserved)
        .where(Account.id.in_([source, target])).order_by(Account.id).with_for_update()
    )).all()
    amount = next((int(balance - reserved) for aid, balance, reserved in rows if aid == source), 0)
    if amount <= 0:
        return 0
    await record(
        session, "transfer", transfer_postings(source, target, amount, node.node_id), now,
        memo=f"pay node {node.node_id[:16]} earned before it was enrolled",
    )
    return amount


async def operator_name(session: AsyncSession, account_id: int | None) -> str | None:
    """How the node is told whom it earns for: the wallet, else the account's label."""
    if account_id is None:
        return None
    found = (await session.execute(
        select(Account.wallet, Account.label).where(Account.id == account_id)
    )).first()
    if found is None:
        return None
    return found[0] or found[1] or f"account {account_id}"


async def node_earned(session: AsyncSession, node_id: str) -> int:
    """Micro-credits the node has earned so far (provider shares and bounties), wherever paid."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(and_(
            LedgerEntry.node_id == node_id, LedgerEntry.kind.in_(EARNING_KINDS),
            LedgerEntry.amount > 0,
        ))
    )
    return int(total or 0)
