"""Recomputing bounties once across replicas, and keeping every replica's copy current: the I/O
around :mod:`coordinator.economy.bounties`.

The leader of the ``bounties`` job (:func:`~coordinator.bus.leader.run_as_leader`) reads, every
interval, the completion tokens delivered per model over the window (from the ledger, which
every replica settles into) and the live capacity of the whole network (its own nodes' routing
view and every other replica's published presence), and stores each catalogue model's bounty
in the ``bounties`` table under its fencing epoch: a row is only overwritten by an equal or newer
epoch, so a deposed leader's late write changes nothing. Every replica reads the table every
``refresh_s`` into ``services.bounties``, which settling a call reads without I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from coordinator.bus.base import NodePresence, ReplicaPresence
from coordinator.bus.leader import leader_epoch, run_as_leader
from coordinator.economy.bounties import (
    Delivered,
    ModelBounty,
    NodeSupply,
    capacity_by_model,
    compute_bounties,
    demand_since,
    refused_tokens,
)
from coordinator.economy.needs import ECONOMY_NEEDS, EconomyNeeds
from coordinator.periodic import every
from coordinator.store.database import Database
from coordinator.store.models import BountyRow, LedgerTransaction

log = logging.getLogger(__name__)

JOB_NAME = "bounties"


async def delivered_calls(database: Database, since: datetime) -> dict[str, Delivered]:
    """Completion tokens settled per model since ``since``, on every replica, and the calls
    that delivered them (a call that failed before its first token settles with none)."""
    async with database.session() as session:
        rows = (await session.execute(
            select(LedgerTransaction.model, func.sum(LedgerTransaction.completion_tokens),
                   func.count())
            .where(LedgerTransaction.kind == "call", LedgerTransaction.created_at >= since,
                   LedgerTransaction.model.is_not(None), LedgerTransaction.completion_tokens > 0)
            .group_by(LedgerTransaction.model)
        )).all()
    return {model: Delivered(tokens=int(tokens or 0), calls=int(calls))
            for model, tokens, calls in rows if model is not None}


async def network_presence(services: EconomyNeeds) -> tuple[ReplicaPresence, list[ReplicaPresence]]:
    """This replica's presence and every other replica's, as they publish it.

    The others' are read afresh rather than taken from this replica's router, whose merged view
    may still be empty on a replica that has just started and taken the lead; if the bus cannot
    be read, the router's merged view stands in (without the others' refusals)."""
    try:
        others = await services.bus.read_presence() if services.bus.distributed else []
    except Exception:
        log.warning("presence not read; using this replica's view", exc_info=True)
        others = [ReplicaPresence(replica="merged", published_at=0.0,
                                  nodes=tuple(services.remote_nodes.values()))]
    return services.local_presence(), others


def network_refusals(
    local: ReplicaPresence, others: Iterable[ReplicaPresence]
) -> dict[str, int]:
    """Requests refused for want of a node across the network, per model."""
    total = dict(local.refused)
    for replica in others:
        if replica.replica == local.replica:
            continue
        for model, count in replica.refused.items():
            total[model] = total.get(model, 0) + count
    return total


def network_nodes(
    local: ReplicaPresence, others: Iterable[ReplicaPresence]
) -> list[NodePresence]:
    """One record per node: this replica's own, else the newest connection another claims."""
    nodes = {node.node_id: node for node in local.nodes}
    connected_here = set(nodes)
    for replica in others:
        if replica.replica == local.replica:
            continue
        for node in replica.nodes:
            held = nodes.get(node.node_id)
            if node.node_id in connected_here or (
                held is not None and held.connected_at >= node.connected_at
            ):
                continue
            nodes[node.node_id] = node
    return list(nodes.values())


def supply_of(nodes: Iterable[NodePresence]) -> list[NodeSupply]:
    """What each node can produce now: the slots its breaker and ramp-up allow, at its speed."""
    return [
        NodeSupply(
            models=frozenset(node.models), slots=node.capacity, draining=node.draining,
            tok_s=node.measured_tok_s if node.measured_tok_s is not None else node.declared_tok_s,
        )
        for node in nodes
    ]


async def store_bounties(
    database: Database, bounties: Sequence[ModelBounty], *, computed_at: datetime, epoch: int
) -> None:
    """Write the bounties, each only over a row of the same or an older epoch (fencing)."""
    if not bounties:
        return
    dialect = postgresql if database.engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(BountyRow).values([
        {"model": b.model, "multiplier": b.multiplier, "demand_tok_s": b.demand_tok_s,
         "capacity_tok_s": b.capacity_tok_s, "computed_at": computed_at, "epoch": epoch}
        for b in bounties
    ])
    statement = insert.on_conflict_do_update(
        index_elements=[BountyRow.model],
        set_={
            column: insert.excluded[column]
            for column in ("multiplier", "demand_tok_s", "capacity_tok_s", "computed_at", "epoch")
        },
        where=BountyRow.epoch <= insert.excluded.epoch,
    )
    async with database.session() as session, session.begin():
        await session.execute(statement)


async def load_bounties(database: Database) -> tuple[list[ModelBounty], datetime | None, int]:
    """The stored bounties, when they were last computed, and the newest epoch among them."""
    async with database.session() as session:
        rows = (await session.scalars(select(BountyRow))).all()
    bounties = [
        ModelBounty(model=row.model, multiplier=row.multiplier, demand_tok_s=row.demand_tok_s,
                    capacity_tok_s=row.capacity_tok_s)
        for row in rows
    ]
    computed_at = max((row.computed_at for row in rows), default=None)
    return bounties, computed_at, max((row.epoch for row in rows), default=0)


async def recompute(services: EconomyNeeds) -> tuple[ModelBounty, ...]:
    """One recomputation by the leader: compute, store under its epoch, adopt here at once."""
    economy = services.settings.economy
    now = services.clock.now()
    delivered = await delivered_calls(services.database, demand_since(now, economy))
    local, others = await network_presence(services)
    capacity = capacity_by_model(
        supply_of(network_nodes(local, others)),
        unknown_tok_s=services.settings.routing.floor_tok_s,
    )
    bounties = compute_bounties(
        (priced.id for priced in services.catalogue),
        {model: served.tokens for model, served in delivered.items()}, capacity, economy,
        refused=refused_tokens(network_refusals(local, others), delivered, economy),
    )
    epoch = leader_epoch.get()
    await store_bounties(services.database, bounties, computed_at=now, epoch=epoch)
    _announce_changes(services.bounties.bounties.values(), bounties)
    await refresh(services)
    return bounties


async def refresh(services: EconomyNeeds) -> None:
    """Adopt the stored bounties as this replica's copy."""
    bounties, computed_at, epoch = await load_bounties(services.database)
    services.bounties.replace(bounties, computed_at=computed_at, epoch=epoch)


async def recompute_forever(services: EconomyNeeds) -> None:
    """The leader's job: recompute every ``interval_s`` until its term ends."""
    await every(services.settings.economy.bounties.interval_s, lambda: recompute(services), log,
                "recompute bounties")


async def follow_bounties(services: EconomyNeeds) -> None:
    """Forever, on every replica: read the bounties the leader stored."""
    await every(services.settings.economy.bounties.refresh_s, lambda: refresh(services), log,
                "read bounties")


def _announce_changes(before: Iterable[ModelBounty], after: Iterable[ModelBounty]) -> None:
    previous = {bounty.model: bounty.multiplier for bounty in before}
    for bounty in after:
        if round(previous.get(bounty.model, 1.0), 2) != round(bounty.multiplier, 2):
            log.info(
                "bounty for %s: x%.2f (demand %.1f tok/s, capacity %.1f tok/s)", bounty.model,
                bounty.multiplier, bounty.demand_tok_s, bounty.capacity_tok_s,
            )


async def bounties_running(app: web.Application) -> AsyncIterator[None]:
    """The ``cleanup_ctx`` (after the one that builds the services): the leader's recomputation
    and this replica's reading, both stopped before the database closes."""
    services = app[ECONOMY_NEEDS]
    tasks = [
        asyncio.create_task(run_as_leader(
            services.bus, JOB_NAME, lambda: recompute_forever(services),
            lease_s=services.settings.bus.leader_lease_s,
        )),
        asyncio.create_task(follow_bounties(services)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
