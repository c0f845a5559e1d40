"""The coordinator's tables (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class Account(Base):
    """Who holds credits: a wallet, a local operator account, or a platform book."""

    __tablename__ = "accounts"
    # Only the system books (issuance) go below zero, by exactly what they issued.
    __table_args__ = (
        CheckConstraint("kind = 'system' OR balance >= 0", name="ck_accounts_balance_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | platform | system
    wallet: Mapped[str | None] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    oidc_subject: Mapped[str | None] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime]
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """Micro-credits: the sum of this account's ledger entries, kept in the same transaction."""
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    """Micro-credits held for calls in flight (not a ledger movement: nothing has moved yet)."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    spend_limit: Mapped[int | None] = mapped_column(BigInteger)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Node(Base):
    """Every node that ever registered, by its public key."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    engine: Mapped[str] = mapped_column(String(32))
    models: Mapped[list[str]] = mapped_column(JSON)
    hardware: Mapped[dict[str, object]] = mapped_column(JSON)
    earnings_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    """Where the node's pay goes until an operator claims it (a per-node account)."""
    model_switched_at: Mapped[datetime | None]


class NodeHealthBucket(Base):
    """One hour of a node's routing outcomes, so the 14-day window survives restarts."""

    __tablename__ = "node_health"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    neutrals: Mapped[int] = mapped_column(Integer, default=0)
    probe_successes: Mapped[int] = mapped_column(Integer, default=0)
    probe_failures: Mapped[int] = mapped_column(Integer, default=0)
    online_s: Mapped[float] = mapped_column(default=0.0)


class LedgerTransaction(Base):
    """One balanced movement of credits; its entries sum to zero."""

    __tablename__ = "ledger_transactions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # call | grant | topup | transfer
    reference: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), index=True)
    model: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    memo: Mapped[str | None] = mapped_column(String(200))


class LedgerEntry(Base):
    """One account's side of a transaction; append-only (corrections are new transactions)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(24))
    node_id: Mapped[str | None] = mapped_column(String(64), index=True)


class Hold(Base):
    """Credits reserved for a call in flight; released by its settlement or when it expires."""

    __tablename__ = "holds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Session(Base):
    """A signed-in browser or API session, by the hash of its bearer token."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class SignInNonce(Base):
    """A single-use sign-in nonce; consumed by deleting it."""

    __tablename__ = "signin_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class TopupInvoice(Base):
    """A request to pay USDC on Solana, watched by its Solana Pay reference key."""

    __tablename__ = "topup_invoices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    amount_raw: Mapped[int] = mapped_column(BigInteger)  # USDC base units (6 decimals)
    credits: Mapped[int] = mapped_column(BigInteger)  # micro-credits to grant when paid
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | credited | expired
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    signature: Mapped[str | None] = mapped_column(String(100), unique=True)
    paid_raw: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(300))


class Enrollment(Base):
    """A one-time token that binds the node which presents it to an account (stored hashed)."""

    __tablename__ = "enrollments"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    redeemed_at: Mapped[datetime | None]
    node_id: Mapped[str | None] = mapped_column(String(64))
    """The node that redeemed it; that node may present it again (it stays in its config)."""


class ContributionRow(Base):
    """One record of the points history; append-only (the database refuses updates and deletes).

    Columns are shared by the record kinds (``flag``: passed / completed / genuine; ``amount``:
    tok/s / seconds online / penalty points) so a day of the network loads without parsing JSON.
    """

    __tablename__ = "contributions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    node_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[float] = mapped_column(Double, index=True)
    model: Mapped[str | None] = mapped_column(String(64))
    flag: Mapped[bool | None]
    count: Mapped[int] = mapped_column(Integer, default=1)
    tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    amount: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime]


class CloudNode(Base):
    """An operator's OpenAI-compatible upstream, served as a node; its token is stored sealed."""

    __tablename__ = "cloud_nodes"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    base_url: Mapped[str] = mapped_column(String(2000))
    model: Mapped[str] = mapped_column(String(64))
    upstream_model: Mapped[str] = mapped_column(String(200))
    concurrency: Mapped[int] = mapped_column(Integer)
    resume: Mapped[bool] = mapped_column(Boolean, default=False)
    token_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """``SecretBox`` nonce and ciphertext under the master key; never the token itself."""
    token_last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BountyRow(Base):
    """A model's current bounty, computed by the leader of the ``bounties`` job; ``epoch`` is
    its leader term's fencing epoch, so a stale leader's late write is refused."""

    __tablename__ = "bounties"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    multiplier: Mapped[float] = mapped_column(Double)
    demand_tok_s: Mapped[float] = mapped_column(Double)
    capacity_tok_s: Mapped[float] = mapped_column(Double)
    computed_at: Mapped[datetime]
    epoch: Mapped[int] = mapped_column(BigInteger)


class StoredResponse(Base):
    """A Responses API answer stored for the API key that asked (``store: true``): the
    conversation to continue from with ``previous_response_id``, and the response as returned."""

    __tablename__ = "stored_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    conversation: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


class CatalogueEntry(Base):
    """A model the network serves: its identity (a :class:`protocol.catalogue.CatalogueModel`
    as JSON), its prices, and the fingerprint that lets probes check a node's weights."""

    __tablename__ = "catalogue_models"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    price_input_per_1m: Mapped[int] = mapped_column(BigInteger)
    price_output_per_1m: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    added_at: Mapped[datetime]
    updated_at: Mapped[datetime]
