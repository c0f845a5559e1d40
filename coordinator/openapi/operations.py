"""Every operation of the coordinator's HTTP API, described by the models its handler uses.

To add a route: register it on the app as usual, then add an ``Operation`` here naming its
method, path (aiohttp's ``{name}`` placeholders), ``auth`` ("api_key", "session" or None), its
request body and query models, and its success responses by status. Error responses need nothing:
every operation answers errors with ``ErrorBody`` (the OpenAI error shape), and the auth scheme
adds 401 (plus 403 for a session cookie without its CSRF header, and 429 where limits apply);
``errors`` names the other statuses a client should expect, and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coordinator.accounts.activity import Activity, ActivityQuery
from coordinator.accounts.node_routes import NodeList
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
from coordinator.accounts.topup_routes import TopupView
from coordinator.cloud.schemas import CloudNodeList, CloudNodeView, CreateCloudNode, UpdateCloudNode
from coordinator.economy.bounty_routes import NetworkBounties
from coordinator.gateway.anthropic_types import (
    AnthropicErrorBody,
    CountTokensRequest,
    InputTokens,
    MessageAnswer,
    MessagesRequest,
)
from coordinator.gateway.completions_types import CompletionRequest, TextCompletion
from coordinator.gateway.errors import is_api_path
from coordinator.gateway.openai_types import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorBody,
    ModelEntry,
    ModelList,
)
from coordinator.gateway.responses_types import ResponseDeleted, ResponseObject, ResponseRequest
from coordinator.hub.enrollment_routes import EnrollmentIssued
from coordinator.points.schemas import (
    DaysQuery,
    EstimateQuery,
    Leaderboard,
    NetworkUsage,
    PointsEstimate,
    ProviderPoints,
)
from coordinator.routing import RoutingConstants
from coordinator.settings.points_constants import PointsConstants
from coordinator.web.schemas import NetworkPricing
from protocol.catalogue import NetworkCatalogue

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
    errors: Mapping[int, str] = field(default_factory=dict)  # other error statuses: when
    error_body: type[BaseModel] = ErrorBody  # the shape of every error (Anthropic's on its door)


BAD_DAYS = {400: "days is not a whole number from 1 to the coordinator's points.max_days"}
NO_CLOUD_NODE = {404: "no such cloud node on this account"}
UPSTREAM_CHECK = {400: "an invalid body, a non-catalogue model, or an upstream that failed the"
                       " test completion (unreachable, private, refused the token, no answer)",
                  503: "cloud nodes are off: the coordinator has no master key"}
SSE = Body("text/event-stream", "chat.completion.chunk events, then `data: [DONE]`")

OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", "/v1/chat/completions", "Create a chat completion (OpenAI-compatible)",
              {200: ChatCompletion}, auth="api_key", request=ChatCompletionRequest,
              also={200: SSE}, tags=("gateway",), rate_limited=True),
    Operation("POST", "/v1/completions", "Continue a prompt as written (OpenAI legacy completions)",
              {200: TextCompletion}, auth="api_key", request=CompletionRequest,
              also={200: Body("text/event-stream", "text_completion events, then `data: [DONE]`")},
              tags=("gateway",), rate_limited=True),
    Operation("POST", "/v1/responses", "Create a response (OpenAI Responses-compatible)",
              {200: ResponseObject}, auth="api_key", request=ResponseRequest,
              also={200: Body("text/event-stream", "response.* semantic events")},
              tags=("gateway",), rate_limited=True,
              errors={404: "previous_response_id names no response stored with this key"}),
    Operation("GET", "/v1/responses/{response_id}", "A response stored with store: true",
              {200: ResponseObject}, auth="api_key",
              path_params={"response_id": "the response's id"}, tags=("gateway",),
              rate_limited=True, errors={404: "no such response stored with this key"}),
    Operation("DELETE", "/v1/responses/{response_id}", "Delete a stored response",
              {200: ResponseDeleted}, auth="api_key",
              path_params={"response_id": "the response's id"}, tags=("gateway",),
              rate_limited=True, errors={404: "no such response stored with this key"}),
    Operation("POST", "/v1/messages", "Create a message (Anthropic Messages-compatible)",
              {200: MessageAnswer}, auth="api_key", request=MessagesRequest,
              also={200: Body("text/event-stream", "Anthropic's message events")},
              tags=("gateway",), rate_limited=True, error_body=AnthropicErrorBody),
    Operation("POST", "/v1/messages/count_tokens", "Count a Messages request's input tokens",
              {200: InputTokens}, auth="api_key", request=CountTokensRequest,
              tags=("gateway",), rate_limited=True, error_body=AnthropicErrorBody),
    Operation("GET", "/v1/models", "Models served by at least one live node",
              {200: ModelList}, auth="api_key", tags=("gateway",), rate_limited=True),
    Operation("GET", "/v1/models/{model_id}", "One catalogue model (nodes: how many serve it now)",
              {200: ModelEntry}, auth="api_key", path_params={"model_id": "a catalogue model id"},
              tags=("gateway",), rate_limited=True, errors={404: "no such model"}),
    Operation("GET", "/v1/network/constants", "The routing constants this network runs with",
              {200: RoutingConstants}, tags=("network",)),
    Operation("GET", "/v1/network/catalogue",
              "Every model the network serves: identity (sha256, size, quantization, context, "
              "chat template), prices and download source", {200: NetworkCatalogue},
              tags=("network",)),
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
    Operation("GET", "/v1/account/topups/{topup_id}/qr.svg",
              "The invoice's Solana Pay link as a QR code",
              {200: Body("image/svg+xml", "an SVG QR code of the solana: payment link")},
              auth="session", path_params={"topup_id": "the invoice id"}, tags=("account",),
              errors={404: "no payable top-up with this id on this account"}),
    Operation("GET", "/v1/account/activity", "Earned, spent and calls per UTC day, oldest first",
              {200: Activity}, auth="session", query=ActivityQuery, tags=("account",),
              errors={400: "days is not a whole number from 1 to 366"}),
    Operation("POST", "/v1/account/wallet",
              "Link a Solana wallet to this account (a signed sign-in message)",
              {200: AccountView}, auth="session", request=VerifyRequest, tags=("account",),
              rate_limited=True, errors={
                  400: "a malformed or wrongly signed message, or the account has another wallet",
                  403: "this wallet already signs in to another account"}),
    Operation("GET", "/v1/account/nodes", "Every node enrolled to the account, live ones first",
              {200: NodeList}, auth="session", tags=("nodes",)),
    Operation("POST", "/v1/account/cloud-nodes",
              "Add a cloud node (its upstream must answer a test completion first)",
              {201: CloudNodeView}, auth="session", request=CreateCloudNode, tags=("nodes",),
              rate_limited=True, errors=UPSTREAM_CHECK),
    Operation("GET", "/v1/account/cloud-nodes", "The account's cloud nodes",
              {200: CloudNodeList}, auth="session", tags=("nodes",)),
    Operation("GET", "/v1/account/cloud-nodes/{node_id}", "One cloud node",
              {200: CloudNodeView}, auth="session",
              path_params={"node_id": "the cloud node's id"}, tags=("nodes",),
              errors=NO_CLOUD_NODE),
    Operation("PATCH", "/v1/account/cloud-nodes/{node_id}",
              "Change a cloud node (a new URL, token or upstream model is checked again)",
              {200: CloudNodeView}, auth="session", request=UpdateCloudNode,
              path_params={"node_id": "the cloud node's id"}, tags=("nodes",),
              rate_limited=True, errors={**UPSTREAM_CHECK, **NO_CLOUD_NODE}),
    Operation("DELETE", "/v1/account/cloud-nodes/{node_id}",
              "Take a cloud node offline and forget its upstream", {204: None}, auth="session",
              path_params={"node_id": "the cloud node's id"}, tags=("nodes",),
              errors=NO_CLOUD_NODE),
    Operation("GET", "/v1/network/models", "The live models (what /v1/models lists), for anyone",
              {200: ModelList}, tags=("network",)),
    Operation("GET", "/v1/network/bounties",
              "Each model's bounty multiplier now: demand against live capacity, or configured",
              {200: NetworkBounties}, tags=("network",)),
    Operation("GET", "/v1/network/pricing", "What a credit costs and the starter credits",
              {200: NetworkPricing}, tags=("network",)),
    Operation("GET", "/v1/network/usage", "Tokens and jobs served per day, zeros included",
              {200: NetworkUsage}, query=DaysQuery, tags=("points",), errors=BAD_DAYS),
    Operation("GET", "/v1/leaderboard", "Providers ranked by points over the last days",
              {200: Leaderboard}, query=DaysQuery, tags=("points",), errors=BAD_DAYS),
    Operation("GET", "/v1/providers/{wallet}", "One provider's points, node by node, day by day",
              {200: ProviderPoints}, query=DaysQuery,
              path_params={"wallet": "the provider's wallet (or account) id"}, tags=("points",),
              errors={**BAD_DAYS, 404: "no node ever registered for this provider"}),
    Operation("GET", "/v1/points/estimate", "Points per day a node like this would earn",
              {200: PointsEstimate}, query=EstimateQuery, tags=("points",),
              errors={400: "a missing or out-of-range number, or a model not in the catalogue"}),
    Operation("GET", "/v1/points/constants", "Every constant behind the points formula",
              {200: PointsConstants}, tags=("points",)),
)

NOT_IN_SPEC: frozenset[str] = frozenset({
    "/v1/nodes/connect",  # the node websocket: its vocabulary is protocol.messages
})
"""API paths served outside the OpenAPI description (the node websocket)."""


def in_spec(path: str) -> bool:
    """Whether a served path must have an ``Operation``: every API path (every ``/v1`` route,
    ``/healthz``, ``/install.sh``; see ``is_api_path``) except ``NOT_IN_SPEC``."""
    return is_api_path(path) and path not in NOT_IN_SPEC
