"""What each movement of credits posts, as pure functions: no database, no clock.

Every function returns postings that sum to zero, so no credit is created or destroyed by a call;
credits enter only through grants and top-ups, posted against an issuance account that goes
negative by exactly what it issued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.settings.economy import EconomySettings

BPS = 10_000


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: int
    amount: int  # micro-credits; negative leaves the account
    kind: str
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class ServingNode:
    node_id: str
    account_id: int  # where this node's pay goes
    tokens: int  # completion tokens it produced that reached the consumer
    trust: float  # 0..1, scales the bounty it may receive
    flap_reduction: float  # 0..1, the share of its pay held back after a model switch


@dataclass(frozen=True, slots=True)
class Books:
    platform: int
    bounty_pool: int


def call_postings(
    consumer: int, cost: int, nodes: Sequence[ServingNode], books: Books,
    settings: EconomySettings, *, bounty_multiplier: float, pool_balance: int,
) -> list[Posting]:
    """The postings that settle one call of ``cost`` micro-credits.

    The consumer pays ``cost``; the serving nodes share the provider part pro rata to tokens
    (equally when none delivered any: the call was an empty answer, its prompt their work),
    less any anti-flapping reduction (kept by the platform); the platform part is split with the
    bounty pool; bounties are paid from the pool (never by the consumer) while it has funds,
    and never to a node of the consumer's own account (self-dealing would drain the pool).
    """
    if cost <= 0:
        return []
    postings = [Posting(consumer, -cost, "charge")]
    # Paid by the tokens each delivered; an empty answer pays the node that gave it.
    paid_nodes = [n for n in nodes if n.tokens > 0] or list(nodes)
    provider_part = cost * settings.provider_share_bps // BPS if paid_nodes else 0
    platform_part = cost - provider_part
    to_pool = platform_part * settings.bounty_pool_share_bps // BPS
    if platform_part - to_pool:
        postings.append(Posting(books.platform, platform_part - to_pool, "platform_share"))
    if to_pool:
        postings.append(Posting(books.bounty_pool, to_pool, "pool_funding"))
    pool = pool_balance + to_pool
    shares = split_pro_rata(provider_part, [max(n.tokens, 1) for n in paid_nodes])
    for node, share in zip(paid_nodes, shares, strict=True):
        reduction = int(share * node.flap_reduction)
        if share - reduction:
            postings.append(Posting(node.account_id, share - reduction, "provider_share",
                                    node.node_id))
        if reduction:
            postings.append(Posting(books.platform, reduction, "flap_reduction", node.node_id))
        if node.account_id == consumer:
            continue  # an operator's own call to its own node earns no bounty
        bounty = min(pool, int(share * (bounty_multiplier - 1.0) * node.trust))
        if bounty > 0:
            pool -= bounty
            postings.append(Posting(books.bounty_pool, -bounty, "bounty", node.node_id))
            postings.append(Posting(node.account_id, bounty, "bounty", node.node_id))
    return postings


def split_pro_rata(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` by ``weights`` in integers that add up exactly (largest remainders)."""
    weight_sum = sum(weights)
    if not weights or weight_sum <= 0:
        return [0] * len(weights)
    floors = [total * w // weight_sum for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i)
    )
    for i in remainders[: total - sum(floors)]:
        floors[i] += 1
    return floors


def grant_postings(issuer: int, recipient: int, amount: int, kind: str) -> list[Posting]:
    """Credits entering the network (starter grants, top-ups) from an issuance account."""
    return [Posting(issuer, -amount, kind), Posting(recipient, amount, kind)]


def flap_reduction_at(hours_since_switch: float | None, settings: EconomySettings) -> float:
    """The payout reduction for a node that switched model this many hours ago."""
    if hours_since_switch is None or hours_since_switch >= settings.flap_decay_hours:
        return 0.0
    remaining = 1.0 - max(0.0, hours_since_switch) / settings.flap_decay_hours
    return settings.flap_reduction * remaining


def trust_at(days_online: float, settings: EconomySettings) -> float:
    """New nodes start at ``trust_start`` and ramp linearly to 1 over ``trust_ramp_days``."""
    progress = min(1.0, max(0.0, days_online) / settings.trust_ramp_days)
    return settings.trust_start + (1.0 - settings.trust_start) * progress


def bounty_multiplier_for(
    model: str, settings: EconomySettings, demand_tok_s: float = 0.0, capacity_tok_s: float = 0.0
) -> float:
    """A model's multiplier: configured, else computed from demand relative to live capacity
    (demand with no live capacity at all pays the most)."""
    configured = settings.bounty_multipliers.get(model)
    if configured is not None:
        return min(configured, settings.max_bounty_multiplier)
    if demand_tok_s <= 0.0 or demand_tok_s <= capacity_tok_s:
        return 1.0
    if capacity_tok_s <= 0.0:
        return settings.max_bounty_multiplier
    return min(settings.max_bounty_multiplier, demand_tok_s / capacity_tok_s)
