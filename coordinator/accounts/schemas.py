"""Request and response bodies of the sign-in and account API (the source of its OpenAPI spec).

Amounts are integers of micro-credits (10^-6 credit) with the same value in credits beside them
for display; the integer is the truth.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.accounts.siws import SignInInput
from coordinator.catalogue import MICRO


class RequestBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Reply(BaseModel):
    model_config = ConfigDict(frozen=True)


class Amount(Reply):
    micro_credits: int
    credits: float

    @classmethod
    def of(cls, micro_credits: int) -> Amount:
        return cls(micro_credits=micro_credits, credits=micro_credits / MICRO)


# --- sign-in --------------------------------------------------------------------------------------


class NonceRequest(RequestBody):
    address: str = Field(max_length=64, description="The wallet's base58 ed25519 public key.")


class NonceIssued(Reply):
    input: SignInInput = Field(description="Pass to the wallet's solana:signIn as it is.")
    message: str = Field(description="The exact text to sign (for wallets without signIn).")
    expires_at: datetime


class VerifyRequest(RequestBody):
    # The message is signed: it must arrive byte for byte, never trimmed.
    model_config = ConfigDict(str_strip_whitespace=False)

    message: str = Field(max_length=4096, description="The signed message text, unaltered.")
    signature: str = Field(max_length=128, description="The base58 ed25519 signature.")
    public_key: str = Field(max_length=64, description="The signer's base58 public key.")


class AccountView(Reply):
    id: int
    wallet: str | None
    email: str | None = Field(default=None, description="From the linked OpenID identity.")
    oidc_linked: bool = Field(default=False, description="Whether an OpenID identity is linked.")
    created_at: datetime
    balance: Amount
    reserved: Amount = Field(
        description="Held for calls in flight (and a gateway's credit line for the next few,"
        " returned within seconds of the last call)."
    )
    available: Amount = Field(description="Balance less reserved: what new calls may spend.")
    earnings: Amount = Field(description="Provider shares and bounties received.")
    spend: Amount = Field(description="Charges for calls made.")


class SignedIn(Reply):
    token: str = Field(description="Send as 'Authorization: Bearer <token>' on /v1/account.")
    expires_at: datetime
    account: AccountView


# --- ledger and usage -----------------------------------------------------------------------------


class LedgerQuery(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(default=None, ge=1, description="An entry id: entries older.")


class LedgerEntryView(Reply):
    id: int
    transaction_id: str
    transaction_kind: str = Field(description="call | grant | topup | transfer")
    reference: str | None
    memo: str | None
    api_key_id: int | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    kind: str = Field(description="charge | provider_share | bounty | grant | topup | ...")
    amount: Amount = Field(description="Negative when credits leave the account.")
    node_id: str | None
    created_at: datetime


class LedgerPage(Reply):
    object: Literal["list"] = "list"
    data: list[LedgerEntryView]
    has_more: bool
    next_before: int | None = Field(description="Pass as ?before= for the next page.")


class UsageTotals(Reply):
    calls: int
    prompt_tokens: int
    completion_tokens: int
    spent: Amount


class ModelUsage(UsageTotals):
    model: str | None


class KeyUsage(UsageTotals):
    key_id: int | None
    name: str | None
    prefix: str | None
    models: list[ModelUsage]


class UsageReport(Reply):
    total: UsageTotals
    by_key: list[KeyUsage]
    by_model: list[ModelUsage]


# --- API keys -------------------------------------------------------------------------------------


class CreateKeyRequest(RequestBody):
    name: str = Field(min_length=1, max_length=64)
    spend_limit_credits: Decimal | None = Field(
        default=None, gt=0, le=10**12, decimal_places=6,
        description="The most this key may ever spend, in credits (to the micro-credit).",
    )

    @property
    def spend_limit(self) -> int | None:
        if self.spend_limit_credits is None:
            return None
        return int(self.spend_limit_credits * MICRO)


class KeyView(Reply):
    id: int
    prefix: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    spend_limit: Amount | None
    spent: Amount
    revoked: bool
    revoked_at: datetime | None


class CreatedKey(KeyView):
    secret: str = Field(description="Shown once: only its hash is kept.")


class KeyList(Reply):
    object: Literal["list"] = "list"
    data: list[KeyView]
