"""USDC top-ups, decided in pure functions: the invoice's terms, its Solana Pay URL, and whether a
transaction the RPC returned pays it.

An invoice is paid by a *finalized*, *successful* transaction that names the invoice's
reference key among its accounts and raises the USDC held by the treasury's token accounts by at
least the invoice amount. Amounts come from the integer ``amount`` strings of the transaction's
pre/post token balances (never the float ``uiAmount``), summed over every account whose owner is
the treasury and whose mint is the configured USDC mint; an account absent before the
transaction (created by it) held zero.

Overpayment is credited in full, at the invoice's quoted rate: the USDC is in the treasury and
there is no refund path, so crediting less would keep the payer's money for nothing.
Underpayment is not credited at all (the invoice stays open and says why).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    UiParsedMessage,
    UiTransaction,
    UiTransactionTokenBalance,
)

from coordinator.errors import InvalidRequest

USDC_DECIMALS = 6
USDC_UNIT = 1_000_000  # 10**USDC_DECIMALS
PAYMENT_LABEL = "Koretex"


# --- the invoice ----------------------------------------------------------------------------------


def usdc_amount_raw(value: object, minimum: Decimal, maximum: Decimal) -> int:
    """USDC base units for a decimal string or JSON number of USDC; InvalidRequest if unfit."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidRequest("amount_usdc must be a decimal string or number, such as \"5.25\"",
                             param="amount_usdc")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise InvalidRequest(f"amount_usdc {str(value)[:40]!r} is not a number",
                             param="amount_usdc") from exc
    if not amount.is_finite():
        raise InvalidRequest("amount_usdc must be a finite number", param="amount_usdc")
    if amount < minimum or amount > maximum:
        raise InvalidRequest(f"amount_usdc must be between {minimum} and {maximum} USDC",
                             param="amount_usdc")
    raw = amount * USDC_UNIT
    if raw != raw.to_integral_value():
        raise InvalidRequest(f"amount_usdc has more than {USDC_DECIMALS} decimal places",
                             param="amount_usdc")
    return int(raw)


def usdc_text(raw: int) -> str:
    """Base units as a plain decimal string with no exponent or trailing zeros: ``5250000`` ->
    ``"5.25"`` (the form Solana Pay's ``amount`` requires)."""
    whole, fraction = divmod(raw, USDC_UNIT)
    digits = f"{fraction:0{USDC_DECIMALS}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def credits_for(amount_raw: int, credits_per_usdc: int) -> int:
    """Micro-credits quoted for ``amount_raw`` USDC base units (rounded down)."""
    return amount_raw * credits_per_usdc // USDC_UNIT


def credits_for_payment(quoted_credits: int, amount_raw: int, paid_raw: int) -> int:
    """Micro-credits for a payment of ``paid_raw``, at the rate the invoice quoted: exactly the
    quoted credits for an exact payment, proportionally more for an overpayment."""
    return quoted_credits * paid_raw // amount_raw


def payment_url(recipient: str, amount_raw: int, mint: str, reference: str, message: str) -> str:
    """A Solana Pay transfer request: ``solana:<recipient>?amount=…&spl-token=…&reference=…``."""
    query = {
        "amount": usdc_text(amount_raw),
        "spl-token": mint,
        "reference": reference,
        "label": PAYMENT_LABEL,
        "message": message,
    }
    encoded = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
    return f"solana:{recipient}?{encoded}"


# --- judging a transaction ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """What pays an invoice: USDC of ``usdc_mint`` to ``treasury``, naming ``reference``."""

    reference: str
    amount_raw: int
    treasury: str
    usdc_mint: str


@dataclass(frozen=True, slots=True)
class Paid:
    signature: str
    paid_raw: int  # what the treasury received, in USDC base units (>= the invoice amount)


@dataclass(frozen=True, slots=True)
class Rejected:
    signature: str
    reason: str


@dataclass(frozen=True, slots=True)
class NotFinal:
    signature: str
    reason: str


Verdict = Paid | Rejected | NotFinal


def judge_payment(
    terms: PaymentTerms, signature: str, found: EncodedConfirmedTransactionWithStatusMeta | None
) -> Verdict:
    """Whether ``found`` (``getTransaction`` at *finalized* commitment, jsonParsed) pays the
    invoice. ``None`` is what that call answers for a transaction not finalized yet."""
    if found is None:
        return NotFinal(signature, "payment seen, waiting for it to be finalized")
    meta = found.transaction.meta
    transaction = found.transaction.transaction
    if (meta is None or not isinstance(transaction, UiTransaction)
            or not isinstance(transaction.message, UiParsedMessage)):
        return Rejected(signature, "the RPC answered without status metadata or parsed accounts")
    if not transaction.signatures or str(transaction.signatures[0]) != signature:
        return Rejected(signature, "the RPC answered with a different transaction")
    if meta.err is not None:
        error = json.dumps(json.loads(meta.to_json())["err"])  # as the RPC wrote it
        return Rejected(signature, f"the transaction failed on chain: {error}"[:200])
    # jsonParsed lists every account, static and loaded from lookup tables, as {pubkey, ...}
    # (solders' stub calls the item ParsedAccount; at run time it is ParsedAccountTxStatus).
    accounts = {str(key.pubkey) for key in transaction.message.account_keys}  # type: ignore[attr-defined]
    if terms.reference not in accounts:
        return Rejected(signature, "the transaction does not name this invoice's reference")
    pre = _holdings(meta.pre_token_balances or ())
    post = _holdings(meta.post_token_balances or ())
    received = _change(pre, post, owner=terms.treasury, mint=terms.usdc_mint)
    if received <= 0:
        return Rejected(signature, _why_nothing_arrived(terms, pre, post))
    if received < terms.amount_raw:
        return Rejected(signature, f"underpaid: the treasury received {usdc_text(received)} of "
                                   f"{usdc_text(terms.amount_raw)} USDC")
    return Paid(signature, received)


Holdings = dict[tuple[str, str], int]  # (owner, mint) -> base units across its token accounts


def _holdings(balances: Iterable[UiTransactionTokenBalance]) -> Holdings:
    held: Holdings = {}
    for balance in balances:
        if balance.owner is None:
            continue
        key = (str(balance.owner), str(balance.mint))
        held[key] = held.get(key, 0) + int(balance.ui_token_amount.amount)
    return held


def _change(pre: Holdings, post: Holdings, *, owner: str | None = None,
            mint: str | None = None) -> int:
    keys = set(pre) | set(post)
    return sum(
        post.get(key, 0) - pre.get(key, 0) for key in keys
        if (owner is None or key[0] == owner) and (mint is None or key[1] == mint)
    )


def _why_nothing_arrived(terms: PaymentTerms, pre: Holdings, post: Holdings) -> str:
    keys = set(pre) | set(post)
    other_mints = sorted(
        mint for owner, mint in keys
        if owner == terms.treasury and mint != terms.usdc_mint
        and _change(pre, post, owner=owner, mint=mint) > 0
    )
    if other_mints:
        return f"wrong token: the treasury received mint {other_mints[0]}, not USDC"
    other_owners = sorted(
        owner for owner, mint in keys
        if mint == terms.usdc_mint and owner != terms.treasury
        and _change(pre, post, owner=owner, mint=mint) > 0
    )
    if other_owners:
        return f"wrong recipient: the USDC went to {other_owners[0]}, not the treasury"
    return "no USDC reached the treasury in this transaction"


# --- what a watching round does with an invoice ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceStep:
    """What to do with a pending invoice after judging the transactions that name it."""

    credit: tuple[Paid, ...]  # payments to try crediting, in order, until one sticks
    note: str | None  # why it is not credited (yet), for the invoice's last_error
    expire: bool


def next_step(
    verdicts: Sequence[Verdict], now: datetime, expires_at: datetime, grace: timedelta
) -> InvoiceStep:
    """Credit the first good payment; otherwise say why not, and expire the invoice once its
    grace period is over and nothing is still on its way to finality."""
    paid = tuple(v for v in verdicts if isinstance(v, Paid))
    waiting = [v for v in verdicts if isinstance(v, NotFinal)]
    rejected = [v for v in verdicts if isinstance(v, Rejected)]
    note = None
    if waiting:
        note = waiting[0].reason
    elif rejected:
        note = f"{rejected[-1].reason} (transaction {rejected[-1].signature})"
    expire = not paid and not waiting and now >= expires_at + grace
    return InvoiceStep(credit=paid, note=note, expire=expire)
