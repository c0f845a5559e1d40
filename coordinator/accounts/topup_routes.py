"""The top-up API: buy credits with USDC on Solana through a Solana Pay transfer request.

    POST /v1/account/topups       (session) {amount_usdc}  -> 201 TopupView (status pending)
    GET  /v1/account/topups/{id}  (session)                -> TopupView (pending|credited|expired)

The invoice carries a fresh reference key; the wallet that opens ``payment_url`` adds it to the
transfer as a read-only account, and :mod:`coordinator.economy.topup_watcher` finds the payment
by it and credits the account once the transaction is finalized.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from solders.keypair import Keypair
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.accounts.auth import require_session
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.economy.topups import credits_for, payment_url, usdc_amount_raw, usdc_text
from coordinator.errors import InvalidRequest, NotFound, RateLimited, TopupsUnavailable
from coordinator.settings.economy import TopupSettings
from coordinator.store.models import TopupInvoice

PAYMENT_MESSAGE = "Koretex credits top-up"


class TopupView(BaseModel):
    """A top-up invoice as the account sees it. Amounts: USDC as a decimal string with its
    integer base units (6 decimals) beside it; credits in micro-credits."""

    model_config = ConfigDict(frozen=True)

    id: str
    object: Literal["topup"] = "topup"
    status: Literal["pending", "credited", "expired"]
    amount_usdc: str
    amount_raw: int
    credits: int  # quoted while pending; what was granted once credited
    treasury: str | None  # None only if top-ups have since been disabled
    usdc_mint: str
    reference: str
    payment_url: str | None
    created_at: datetime
    expires_at: datetime
    signature: str | None  # the paying transaction, once credited
    paid_usdc: str | None
    paid_raw: int | None
    last_error: str | None  # why it is not credited yet (underpaid, RPC down, ...)


def topup_view(invoice: TopupInvoice, settings: TopupSettings) -> TopupView:
    treasury = settings.treasury
    return TopupView(
        id=invoice.id,
        status=invoice.status,  # type: ignore[arg-type]
        amount_usdc=usdc_text(invoice.amount_raw),
        amount_raw=invoice.amount_raw,
        credits=invoice.credits,
        treasury=treasury,
        usdc_mint=settings.usdc_mint,
        reference=invoice.reference,
        payment_url=payment_url(treasury, invoice.amount_raw, settings.usdc_mint,
                                invoice.reference, PAYMENT_MESSAGE) if treasury else None,
        created_at=invoice.created_at,
        expires_at=invoice.expires_at,
        signature=invoice.signature,
        paid_usdc=usdc_text(invoice.paid_raw) if invoice.paid_raw is not None else None,
        paid_raw=invoice.paid_raw,
        last_error=invoice.last_error,
    )


async def open_invoice(
    session: AsyncSession, account_id: int, amount_raw: int, credits: int, now: datetime,
    ttl: timedelta,
) -> TopupInvoice:
    """A new pending invoice with a fresh Solana Pay reference, in the caller's transaction."""
    invoice = TopupInvoice(
        id=secrets.token_hex(16), account_id=account_id,
        # A reference only has to be a unique public key nobody else will name in a transaction;
        # a new ed25519 key's public half is exactly what Solana Pay wallets expect.
        reference=str(Keypair().pubkey()),
        amount_raw=amount_raw, credits=credits, status="pending", created_at=now,
        expires_at=now + ttl,
    )
    session.add(invoice)
    await session.flush()
    return invoice


async def create_topup(request: web.Request) -> web.Response:
    """Open an invoice for ``amount_usdc`` USDC and return how to pay it."""
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    settings = services.settings.topups
    if settings.treasury is None:
        raise TopupsUnavailable("top-ups are not enabled on this coordinator (no treasury set)")
    amount_raw = usdc_amount_raw(
        await _amount_field(request), settings.min_usdc, settings.max_usdc
    )
    credits = credits_for(amount_raw, services.settings.economy.credits_per_usdc)
    if credits <= 0:
        raise InvalidRequest("amount_usdc buys less than one micro-credit", param="amount_usdc")
    now = services.clock.now()
    async with services.database.session() as session, session.begin():
        unpaid = await session.scalar(
            select(func.count()).select_from(TopupInvoice).where(
                TopupInvoice.account_id == account_id, TopupInvoice.status == "pending",
                TopupInvoice.expires_at > now,
            )
        )
        if (unpaid or 0) >= settings.max_pending_per_account:
            raise RateLimited(
                f"{unpaid} top-ups are waiting for payment: pay one or let it expire first"
            )
        invoice = await open_invoice(session, account_id, amount_raw, credits, now,
                                     timedelta(seconds=settings.ttl_s))
        view = topup_view(invoice, settings)
    return web.Response(
        text=view.model_dump_json(), status=201, content_type="application/json",
        headers={"Location": f"/v1/account/topups/{invoice.id}"},
    )


async def get_topup(request: web.Request) -> web.Response:
    """An invoice of this account, with its current status."""
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    topup_id = request.match_info["topup_id"]
    async with services.database.session() as session:
        invoice = await session.scalar(
            select(TopupInvoice).where(
                TopupInvoice.id == topup_id[:32], TopupInvoice.account_id == account_id
            )
        )
    if invoice is None:
        raise NotFound(f"no top-up {topup_id[:40]!r} on this account", param="topup_id")
    view = topup_view(invoice, services.settings.topups)
    return web.Response(text=view.model_dump_json(), content_type="application/json")


def add_topup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/account/topups", create_topup)
    app.router.add_get("/v1/account/topups/{topup_id}", get_topup)


async def _amount_field(request: web.Request) -> object:
    raw = await request.read()  # bounded by the app's client_max_size
    try:
        # Decimal for JSON numbers too: 0.1 must mean 0.1 USDC, not the nearest binary float.
        body = json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise InvalidRequest("the body must be JSON: {\"amount_usdc\": \"5.00\"}") from exc
    if not isinstance(body, dict) or "amount_usdc" not in body:
        raise InvalidRequest("send {\"amount_usdc\": \"5.00\"}", param="amount_usdc")
    unknown = sorted(set(body) - {"amount_usdc"})
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}", param=unknown[0])
    return body["amount_usdc"]
