"""The pure money rules: every posting set balances, and each share goes where it should."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from coordinator.economy.postings import (
    Books,
    ServingNode,
    bounty_multiplier_for,
    call_postings,
    flap_reduction_at,
    split_pro_rata,
    trust_at,
)
from coordinator.settings.economy import EconomySettings

BOOKS = Books(platform=1, bounty_pool=2)
CONSUMER = 3
SETTINGS = EconomySettings()

nodes_strategy = st.lists(
    st.builds(
        ServingNode,
        node_id=st.sampled_from(["a", "b", "c", "d"]),
        account_id=st.integers(10, 14),
        tokens=st.integers(0, 500),
        trust=st.floats(0, 1),
        flap_reduction=st.floats(0, 1),
    ),
    max_size=4,
    unique_by=lambda n: n.node_id,
)


@given(
    cost=st.integers(0, 10**9), nodes=nodes_strategy, multiplier=st.floats(1, 3),
    pool=st.integers(0, 10**9), share=st.integers(0, 10_000), pool_share=st.integers(0, 10_000),
)
def test_every_call_balances_and_never_overdraws_the_pool(
    cost: int, nodes: list[ServingNode], multiplier: float, pool: int, share: int,
    pool_share: int,
) -> None:
    settings = EconomySettings(provider_share_bps=share, bounty_pool_share_bps=pool_share)
    postings = call_postings(CONSUMER, cost, nodes, BOOKS, settings,
                             bounty_multiplier=multiplier, pool_balance=pool)
    assert sum(p.amount for p in postings) == 0
    consumer_paid = -sum(p.amount for p in postings if p.account_id == CONSUMER)
    assert consumer_paid == cost, "the consumer pays exactly the cost, bounties never"
    pool_change = sum(p.amount for p in postings if p.account_id == BOOKS.bounty_pool)
    assert pool + pool_change >= 0
    negatives = {(p.account_id, p.kind) for p in postings if p.amount < 0}
    assert negatives <= {(CONSUMER, "charge"), (BOOKS.bounty_pool, "bounty")}


def test_revenue_share_splits_by_tokens_and_keeps_flap_reduction_for_the_platform() -> None:
    settings = EconomySettings(provider_share_bps=8000, bounty_pool_share_bps=0)
    nodes = [ServingNode("a", 10, 30, 1.0, 0.0), ServingNode("b", 11, 10, 1.0, 0.5)]
    postings = call_postings(CONSUMER, 1000, nodes, BOOKS, settings,
                             bounty_multiplier=1.0, pool_balance=0)
    by_account: dict[int, int] = {}
    for p in postings:
        by_account[p.account_id] = by_account.get(p.account_id, 0) + p.amount
    assert by_account[CONSUMER] == -1000
    assert by_account[10] == 600  # 800 * 30/40
    assert by_account[11] == 100  # 800 * 10/40 = 200, half held back after a model switch
    assert by_account[BOOKS.platform] == 200 + 100
    assert [p.kind for p in postings if p.account_id == BOOKS.platform] == [
        "platform_share", "flap_reduction"
    ]


def test_bounty_comes_from_the_pool_scaled_by_trust_and_stops_when_empty() -> None:
    settings = EconomySettings(provider_share_bps=8000, bounty_pool_share_bps=0)
    trusted, new = ServingNode("a", 10, 10, 1.0, 0.0), ServingNode("b", 11, 10, 0.1, 0.0)
    rich = call_postings(CONSUMER, 1000, [trusted, new], BOOKS, settings,
                         bounty_multiplier=1.5, pool_balance=10_000)
    bounties = {p.account_id: p.amount for p in rich if p.kind == "bounty" and p.amount > 0}
    assert bounties == {10: 200, 11: 20}  # 400 * 0.5 * trust
    empty = call_postings(CONSUMER, 1000, [trusted], BOOKS, settings,
                          bounty_multiplier=1.5, pool_balance=0)
    assert not [p for p in empty if p.kind == "bounty"]
    partial = call_postings(CONSUMER, 1000, [trusted], BOOKS, settings,
                            bounty_multiplier=1.5, pool_balance=50)
    assert sum(p.amount for p in partial if p.kind == "bounty" and p.account_id == 10) == 50


def test_an_empty_answer_pays_the_node_that_gave_it() -> None:
    settings = EconomySettings(provider_share_bps=8000, bounty_pool_share_bps=0)
    postings = call_postings(CONSUMER, 500, [ServingNode("a", 10, 0, 1.0, 0.0)], BOOKS,
                             settings, bounty_multiplier=1.0, pool_balance=0)
    assert sum(p.amount for p in postings if p.account_id == 10) == 400  # its prompt's share
    # Beside a node that delivered tokens, one that delivered none gets nothing.
    resumed = call_postings(
        CONSUMER, 500, [ServingNode("a", 10, 5, 1.0, 0.0), ServingNode("b", 11, 0, 1.0, 0.0)],
        BOOKS, settings, bounty_multiplier=1.0, pool_balance=0,
    )
    assert not [p for p in resumed if p.account_id == 11]
    assert call_postings(CONSUMER, 0, [], BOOKS, SETTINGS, bounty_multiplier=1.0,
                         pool_balance=0) == []


@given(total=st.integers(0, 10**12), weights=st.lists(st.integers(0, 10**6), max_size=8))
def test_split_pro_rata_is_exact_and_fair(total: int, weights: list[int]) -> None:
    parts = split_pro_rata(total, weights)
    assert len(parts) == len(weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - total * weight / sum(weights)) < 1 + 1e-6 * total


def test_flap_reduction_decays_to_nothing_over_72_hours() -> None:
    assert flap_reduction_at(None, SETTINGS) == 0.0
    assert flap_reduction_at(0, SETTINGS) == SETTINGS.flap_reduction
    assert flap_reduction_at(36, SETTINGS) == SETTINGS.flap_reduction / 2
    assert flap_reduction_at(72, SETTINGS) == 0.0
    assert flap_reduction_at(500, SETTINGS) == 0.0


def test_trust_ramps_from_ten_percent_to_full_over_fourteen_days() -> None:
    assert trust_at(0, SETTINGS) == 0.1
    assert abs(trust_at(7, SETTINGS) - 0.55) < 1e-9
    assert trust_at(14, SETTINGS) == 1.0
    assert trust_at(100, SETTINGS) == 1.0


def test_bounty_multiplier_configured_or_from_demand() -> None:
    settings = EconomySettings(bounty_multipliers={"m": 1.4}, max_bounty_multiplier=2.0)
    assert bounty_multiplier_for("m", settings) == 1.4
    assert bounty_multiplier_for("x", settings, demand_tok_s=10, capacity_tok_s=20) == 1.0
    assert bounty_multiplier_for("x", settings, demand_tok_s=30, capacity_tok_s=20) == 1.5
    assert bounty_multiplier_for("x", settings, demand_tok_s=900, capacity_tok_s=20) == 2.0


def test_an_operators_own_call_to_its_own_node_earns_no_bounty() -> None:
    settings = EconomySettings(provider_share_bps=8000, bounty_pool_share_bps=0)
    own = ServingNode("mine", CONSUMER, 10, 1.0, 0.0)
    other = ServingNode("theirs", 11, 10, 1.0, 0.0)
    postings = call_postings(CONSUMER, 1000, [own, other], BOOKS, settings,
                             bounty_multiplier=2.0, pool_balance=10_000)
    bounties = {p.account_id: p.amount for p in postings if p.kind == "bounty" and p.amount > 0}
    assert bounties == {11: 400}  # the other operator's node still earns its bounty
    shares = {p.account_id: p.amount for p in postings if p.kind == "provider_share"}
    assert shares == {CONSUMER: 400, 11: 400}  # pay is pay: the operator pays itself its share
    assert sum(p.amount for p in postings) == 0
