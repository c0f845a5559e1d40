"""Every operation of the coordinator's HTTP API, described by the models its handler uses.

To add a route: register it on the app as usual, then add an ``Operation`` here naming its
method, path (aiohttp's ``{name}`` placeholders), ``auth`` ("api_key", "session" or None), its
request body and query models, and its success responses by status. Error responses need nothing:
every operation answers errors with ``ErrorBody`` (the OpenAI error shape), and the auth scheme
adds 401 (plus 429 where limits apply).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.accounts.schemas import (
    AccountView,
    CreatedKey,
    CreateKeyRequest,
    KeyList,
    KeyView,
    LedgerPage,
    LedgerQuery,
    NonceIssued,
    NonceRequest,
    SignedIn,
    UsageReport,
    VerifyRequest,
)
from coordinator.economy.topup_routes import TopupView
from coordinator.gateway.openai_types import ChatCompletion, ChatCompletionRequest, ModelList
from coordinator.hub.enrollment_routes import EnrollmentIssued
from coordinator.routing import RoutingConstants

Auth = Literal["api_key", "session"]


class HealthReport(BaseModel):
    """``GET /healthz``: the replica is up, its nodes, the network's, and the jobs it leads."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok"]
    nodes: int = Field(ge=0, description="Nodes connected to this replica.")
    replica: str = Field(description="This replica's name on the bus.")
    network_nodes: int = Field(ge=0, description="Nodes connected to any replica.")
    leads: list[str] = Field(description="Periodic jobs this replica runs for the network.")


class TopupRequest(BaseModel):
    """USDC to pay, as a decimal string (``"5.00"``) or a JSON number."""

    model_config = ConfigDict(extra="forbid")

    amount_usdc: str | Decimal


@dataclass(frozen=True)
class Body:
    """A response (or request) body that is not JSON: a media type and its string schema."""

    media_type: str
    description: str


Response = type[BaseModel] | Body | None  # None: no body (204)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    responses: Mapping[int, Response]
    auth: Auth | None = None
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)  # name -> description
    also: Mapping[int, Body] = field(default_factory=dict)  # other media types per status
    tags: tuple[str, ...] = ()
    rate_limited: bool = False  # may answer 429 (per-key or per-IP limits)


SSE = Body("text/event-stream", "chat.completion.chunk events, then `data: [DONE]`")

OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/v1/chat/completions", "Create a chat completion (OpenAI-compatible)",
              {200: ChatCompletion}, auth="api_key", request=ChatCompletionRequest,
              also={200: SSE}, tags=("gateway",), rate_limited=True),
    Operation("GET", "/v1/models", "Models served by at least one live node",
              {200: ModelList}, auth="api_key", tags=("gateway",), rate_limited=True),
    Operation("GET", "/v1/network/constants", "The routing constants this network runs with",
              {200: RoutingConstants}, tags=("network",)),
    Operation("GET", "/healthz", "Liveness", {200: HealthReport}, tags=("network",)),
    Operation("GET", "/install.sh", "The one-line node installer",
              {200: Body("text/x-shellscript", "the installer script")}, tags=("nodes",)),
    Operation("POST", "/v1/auth/siws/nonce", "A Sign-In With Solana nonce and message",
              {200: NonceIssued}, request=NonceRequest, tags=("auth",), rate_limited=True),
    Operation("POST", "/v1/auth/siws/verify", "Verify a signed sign-in message; open a session",
              {200: SignedIn}, request=VerifyRequest, tags=("auth",), rate_limited=True),
    Operation("POST", "/v1/auth/logout", "Close this session", {204: None}, auth="session",
              tags=("auth",), rate_limited=True),
    Operation("GET", "/v1/account", "The signed-in account", {200: AccountView},
              auth="session", tags=("account",)),
    Operation("GET", "/v1/account/ledger", "The account's ledger, newest first",
              {200: LedgerPage}, auth="session", query=LedgerQuery, tags=("account",)),
    Operation("GET", "/v1/account/usage", "Usage by model and by key", {200: UsageReport},
              auth="session", tags=("account",)),
    Operation("POST", "/v1/account/keys", "Create an API key (its secret is shown once)",
              {201: CreatedKey}, auth="session", request=CreateKeyRequest, tags=("account",),
              rate_limited=True),
    Operation("GET", "/v1/account/keys", "The account's API keys", {200: KeyList},
              auth="session", tags=("account",)),
    Operation("DELETE", "/v1/account/keys/{key_id}", "Revoke an API key", {200: KeyView},
              auth="session", path_params={"key_id": "the key's id"}, tags=("account",)),
    Operation("POST", "/v1/account/enrollments", "A one-time node enrollment token",
              {201: EnrollmentIssued}, auth="session", tags=("nodes",), rate_limited=True),
    Operation("POST", "/v1/account/topups", "Open a USDC top-up invoice", {201: TopupView},
              auth="session", request=TopupRequest, tags=("account",)),
    Operation("GET", "/v1/account/topups/{topup_id}", "A top-up invoice and its status",
              {200: TopupView}, auth="session", path_params={"topup_id": "the invoice id"},
              tags=("account",)),
)

NOT_IN_SPEC: frozenset[str] = frozenset({
    "/v1/nodes/connect",  # the node websocket: its vocabulary is protocol.messages
    "/openapi.json",  # the spec itself
})
"""Paths served outside the OpenAPI description (websockets, the spec, static files, pages)."""
