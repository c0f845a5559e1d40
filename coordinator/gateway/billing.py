"""Billing one gateway call: hold its worst case up front, settle what was delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from coordinator.accounts.api_keys import KeyOwner
from coordinator.catalogue import Price
from coordinator.economy.postings import ServingNode, flap_reduction_at, trust_at
from coordinator.economy.settlement import CallSettlement
from coordinator.gateway.needs import GatewayNeeds
from coordinator.hub.payees import payee_of
from protocol.chat import ChatMessage
from protocol.ids import NodeId

PER_MESSAGE_OVERHEAD_TOKENS = 8
PROMPT_OVERHEAD_TOKENS = 16


def prompt_token_bound(messages: tuple[ChatMessage, ...]) -> int:
    """An upper bound on the prompt's tokens without a tokenizer: at most one per UTF-8 byte,
    plus the chat template's markers."""
    return PROMPT_OVERHEAD_TOKENS + sum(
        len(m.content.encode()) + PER_MESSAGE_OVERHEAD_TOKENS for m in messages
    )


def prompt_token_estimate(messages: tuple[ChatMessage, ...]) -> int:
    """About four characters a token plus a turn's markers: what a call's prompt is billed
    when no node reported its count (the consumer hung up before the end)."""
    return PROMPT_OVERHEAD_TOKENS + sum(
        -(-len(m.content) // 4) + PER_MESSAGE_OVERHEAD_TOKENS for m in messages
    )


def worst_case_cost(price: Price, messages: tuple[ChatMessage, ...], max_tokens: int) -> int:
    return price.cost(prompt_token_bound(messages), max_tokens)


@dataclass
class CallMeter:
    """What a call actually delivered to its consumer, filled in as it streams."""

    model: str
    price: Price
    completion_id: str
    delivered_by_node: dict[NodeId, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    """The prompt's tokens as counted when the call ended well; 0 until then."""
    prompt_estimate: int = 0
    """What the prompt is billed if the call started but never ended well (the consumer hung
    up mid-answer): the node did the prompt's work all the same."""

    def delivered(self, node_id: NodeId, tokens: int) -> None:
        self.delivered_by_node[node_id] = self.delivered_by_node.get(node_id, 0) + tokens

    @property
    def completion_tokens(self) -> int:
        return sum(self.delivered_by_node.values())

    @property
    def billed_prompt_tokens(self) -> int:
        if self.prompt_tokens or not self.delivered_by_node:
            return self.prompt_tokens
        return self.prompt_estimate

    def cost(self) -> int:
        return self.price.cost(self.billed_prompt_tokens, self.completion_tokens)


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    amount: int
    owner: KeyOwner


async def hold_for_call(services: GatewayNeeds, owner: KeyOwner, amount: int) -> Hold:
    hold_id = await services.ledger.reserve(
        owner.account_id, amount, api_key_id=owner.key_id,
        key_has_limit=owner.spend_limit is not None,
    )
    return Hold(hold_id, amount, owner)


def settle_call(services: GatewayNeeds, hold: Hold, meter: CallMeter) -> None:
    """Queue the call's settlement (no await: safe to call while the handler is cancelled)."""
    now = services.clock.now()
    economy = services.settings.economy
    nodes = []
    for node_id, tokens in meter.delivered_by_node.items():
        live = services.hub.get(node_id)
        remote = services.remote_nodes.get(node_id)  # connected to another replica
        payee = payee_of(services, node_id)
        first_seen = live.first_seen if live else now
        switched = live.model_switched_at if live else None
        if live is None and remote is not None:
            first_seen = datetime.fromtimestamp(remote.first_seen, UTC)
            switched = (
                datetime.fromtimestamp(remote.model_switched_at, UTC)
                if remote.model_switched_at is not None else None
            )
        if payee is None:
            continue
        nodes.append(ServingNode(
            node_id=node_id, account_id=payee, tokens=tokens,
            trust=trust_at((now - first_seen).total_seconds() / 86_400, economy),
            flap_reduction=flap_reduction_at(
                (now - switched).total_seconds() / 3600 if switched else None, economy
            ),
        ))
    services.ledger.settle(CallSettlement(
        reference=f"call:{meter.completion_id}",
        account_id=hold.owner.account_id,
        api_key_id=hold.owner.key_id,
        hold_id=hold.id,
        hold_amount=hold.amount,
        cost=meter.cost(),
        model=meter.model,
        prompt_tokens=meter.billed_prompt_tokens,
        completion_tokens=meter.completion_tokens,
        nodes=tuple(nodes),
        bounty_multiplier=services.bounties.multiplier(meter.model, economy),
    ))
