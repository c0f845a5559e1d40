"""The pure bounty rules: demand over the window against live capacity, configured settings win,
and the fenced store keeps a deposed leader's late write out (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from coordinator.bus.base import NodePresence, ReplicaPresence
from coordinator.economy.bounties import (
    BountyBoard,
    Delivered,
    ModelBounty,
    NodeSupply,
    RefusalTally,
    capacity_by_model,
    compute_bounties,
    demand_since,
    demand_tok_s,
    refused_tokens,
)
from coordinator.economy.bounty_keeper import (
    load_bounties,
    network_nodes,
    network_refusals,
    store_bounties,
    supply_of,
)
from coordinator.settings.economy import BountySettings, EconomySettings
from coordinator.store.database import Database
from protocol.ids import ModelId, NodeId

SETTINGS = EconomySettings(
    max_bounty_multiplier=3.0,
    bounties=BountySettings(window_s=100.0, target_utilisation=0.5),
)


def test_capacity_is_speed_times_allowed_slots_over_live_nodes() -> None:
    nodes = [
        NodeSupply(models=frozenset({"a"}), slots=2, tok_s=30.0),
        NodeSupply(models=frozenset({"a", "b"}), slots=1, tok_s=10.0),
        NodeSupply(models=frozenset({"a"}), slots=4, tok_s=50.0, draining=True),  # leaving
        NodeSupply(models=frozenset({"b"}), slots=0, tok_s=50.0),  # parked: no slot now
        NodeSupply(models=frozenset({"c"}), slots=3, tok_s=None),  # speed not known yet
    ]
    assert capacity_by_model(nodes, unknown_tok_s=5.0) == {"a": 70.0, "b": 10.0, "c": 15.0}


def test_demand_is_delivered_rate_over_target_utilisation() -> None:
    assert demand_tok_s(1000, SETTINGS) == 1000 / 100 / 0.5
    assert demand_tok_s(0, SETTINGS) == 0.0
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert demand_since(now, SETTINGS) == now - timedelta(seconds=100)


def test_under_supplied_models_get_a_bounty_capped_at_the_maximum() -> None:
    delivered = {"busy": 2000, "idle": 100, "orphan": 50, "swamped": 10**6}
    capacity = {"busy": 20.0, "idle": 20.0, "quiet": 20.0, "swamped": 1.0}
    bounties = {
        b.model: b for b in compute_bounties(
            ["busy", "idle", "quiet", "orphan", "swamped", "absent"], delivered, capacity, SETTINGS
        )
    }
    assert bounties["busy"].demand_tok_s == 40.0 and bounties["busy"].multiplier == 2.0
    assert bounties["idle"].multiplier == 1.0  # 2 tok/s of demand against 20 of capacity
    assert bounties["quiet"].multiplier == 1.0  # capacity, no demand
    assert bounties["orphan"].multiplier == 3.0  # demand and no live capacity at all
    assert bounties["orphan"].capacity_tok_s == 0.0
    assert bounties["swamped"].multiplier == 3.0  # capped
    assert bounties["absent"].multiplier == 1.0  # neither demand nor capacity


def test_a_configured_multiplier_wins_over_the_computed_one() -> None:
    settings = SETTINGS.model_copy(update={"bounty_multipliers": {"busy": 1.25}})
    (bounty,) = compute_bounties(["busy"], {"busy": 10**6}, {"busy": 1.0}, settings)
    assert bounty.multiplier == 1.25
    board = BountyBoard()
    board.replace([ModelBounty("busy", 2.5, 1.0, 1.0)], computed_at=None, epoch=1)
    assert board.multiplier("busy", settings) == 1.25
    assert board.multiplier("busy", SETTINGS) == 2.5


def test_the_board_falls_back_to_no_bounty_and_respects_the_current_cap() -> None:
    board = BountyBoard()
    assert board.multiplier("m", SETTINGS) == 1.0  # nothing computed yet
    board.replace([ModelBounty("m", 2.8, 9.0, 1.0)], computed_at=None, epoch=4)
    lowered = SETTINGS.model_copy(update={"max_bounty_multiplier": 2.0})
    assert board.multiplier("m", lowered) == 2.0 and board.epoch == 4


@given(
    delivered=st.integers(0, 10**9), more=st.integers(0, 10**6),
    capacity=st.floats(0, 10**6, allow_nan=False), extra=st.floats(0, 10**6, allow_nan=False),
)
def test_multiplier_is_bounded_and_moves_with_demand_and_against_capacity(
    delivered: int, more: int, capacity: float, extra: float
) -> None:
    def multiplier(tokens: int, supply: float) -> float:
        (bounty,) = compute_bounties(["m"], {"m": tokens}, {"m": supply}, SETTINGS)
        return bounty.multiplier

    base = multiplier(delivered, capacity)
    assert 1.0 <= base <= SETTINGS.max_bounty_multiplier
    assert multiplier(delivered + more, capacity) >= base
    assert multiplier(delivered, capacity + extra) <= base


async def test_a_stale_leaders_late_write_is_refused(tmp_path: Path, database_url: str) -> None:
    database = await Database.open(database_url)
    try:
        at = datetime(2026, 3, 1, tzinfo=UTC)
        await store_bounties(
            database, [ModelBounty("a", 1.5, 30.0, 20.0), ModelBounty("b", 1.0, 0.0, 9.0)],
            computed_at=at, epoch=7,
        )
        await store_bounties(  # the deposed leader (epoch 6) writes late
            database, [ModelBounty("a", 2.0, 99.0, 1.0)], computed_at=at + timedelta(1), epoch=6
        )
        bounties, computed_at, epoch = await load_bounties(database)
        assert {b.model: b.multiplier for b in bounties} == {"a": 1.5, "b": 1.0}
        assert computed_at == at and epoch == 7
        await store_bounties(  # the same term recomputes, and the next one takes over
            database, [ModelBounty("a", 1.2, 24.0, 20.0)], computed_at=at + timedelta(2), epoch=7
        )
        await store_bounties(
            database, [ModelBounty("b", 1.8, 16.0, 9.0)], computed_at=at + timedelta(3), epoch=8
        )
        bounties, computed_at, epoch = await load_bounties(database)
        assert {b.model: b.multiplier for b in bounties} == {"a": 1.2, "b": 1.8}
        assert computed_at == at + timedelta(3) and epoch == 8
    finally:
        await database.close()


def presence(node_id: str, connected_at: float, *, tok_s: float = 10.0) -> NodePresence:
    return NodePresence(
        node_id=NodeId(node_id), models=(ModelId("m"),), slots=2, declared_tok_s=tok_s,
        measured_tok_s=None, first_seen=0.0, connected_at=connected_at, model_switched_at=None,
        payee_account_id=1, in_flight=0, capacity=2, health_score=0.5, draining=False,
    )


def test_the_network_counts_each_node_once_where_it_is_connected_now() -> None:
    here = ReplicaPresence(replica="r1", published_at=0, nodes=(presence("a", 5.0),))
    others = [
        ReplicaPresence(replica="r1", published_at=0, nodes=(presence("stale", 1.0),)),  # self
        ReplicaPresence(replica="r2", published_at=0, nodes=(
            presence("a", 9.0, tok_s=99.0),  # a lingering claim: "a" is connected here
            presence("b", 1.0, tok_s=99.0),  # moved to r3 since
        )),
        ReplicaPresence(replica="r3", published_at=0, nodes=(presence("b", 2.0),)),
    ]
    nodes = {node.node_id: node for node in network_nodes(here, others)}
    assert set(nodes) == {"a", "b"}
    assert nodes[NodeId("a")].connected_at == 5.0 and nodes[NodeId("b")].connected_at == 2.0
    assert capacity_by_model(supply_of(nodes.values()), unknown_tok_s=5.0) == {"m": 40.0}


def test_refusals_are_counted_over_the_last_window_only() -> None:
    tally = RefusalTally(window_s=300.0, bucket_s=60.0)
    start = 1_000_020.0
    for _ in range(3):
        tally.add("a", start)
    tally.add("b", start + 100)
    assert tally.counts(start + 100) == {"a": 3, "b": 1}
    # The window slides a bucket at a time: "a"'s minute leaves it first.
    assert tally.counts(start + 299) == {"a": 3, "b": 1}
    assert tally.counts(start + 361) == {"b": 1}
    assert tally.counts(start + 1000) == {}


def test_a_refused_request_counts_as_the_models_average_call_else_the_default() -> None:
    delivered = {"a": Delivered(tokens=900, calls=3)}
    default = SETTINGS.bounties.tokens_per_refused_request
    assert refused_tokens({"a": 2, "b": 5}, delivered, SETTINGS) == {"a": 600, "b": 5 * default}


def test_refused_demand_raises_the_bounty_of_a_model_no_node_serves() -> None:
    refused = refused_tokens({"a": 4}, {}, SETTINGS)
    (alone,) = compute_bounties(["a"], {}, {}, SETTINGS, refused=refused)
    assert alone.demand_tok_s == demand_tok_s(refused["a"], SETTINGS) > 0
    assert alone.capacity_tok_s == 0 and alone.multiplier == SETTINGS.max_bounty_multiplier
    # Delivered and refused tokens add up against the capacity there is.
    (both,) = compute_bounties(["a"], {"a": 1000}, {"a": 10.0}, SETTINGS, refused={"a": 500})
    assert both.demand_tok_s == demand_tok_s(1500, SETTINGS)
    assert both.multiplier == min(3.0, both.demand_tok_s / 10.0)


def test_the_networks_refusals_add_every_replicas_once() -> None:
    local = ReplicaPresence(replica="r1", published_at=0.0, nodes=(), refused={"a": 2})
    others = [
        ReplicaPresence(replica="r1", published_at=0.0, nodes=(), refused={"a": 99}),  # itself
        ReplicaPresence(replica="r2", published_at=0.0, nodes=(), refused={"a": 1, "b": 3}),
    ]
    assert network_refusals(local, others) == {"a": 3, "b": 3}


def test_each_account_and_network_adds_at_most_its_cap_of_refusals() -> None:
    tally = RefusalTally(window_s=300.0, bucket_s=60.0, per_account=2, per_network=3)
    now = 1_000_020.0
    counted = [tally.add("a", now, account=1, network="10.0.0.0/24") for _ in range(4)]
    assert counted == [True, True, False, False]
    # Another account on the same network fills the network's cap, then is refused too.
    assert tally.add("a", now, account=2, network="10.0.0.0/24")
    assert not tally.add("b", now, account=2, network="10.0.0.0/24")
    assert tally.add("b", now, account=3, network="10.0.1.0/24")
    assert tally.counts(now) == {"a": 3, "b": 1}
    # Caps are over the window: once the refusals leave it, the account counts again.
    assert tally.add("a", now + 400, account=1, network="10.0.0.0/24")
