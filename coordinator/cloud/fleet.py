"""Cloud nodes online: each stored upstream joins the hub and the router as a node.

Bringing a cloud node online mirrors what ``hub.connect`` does when an agent registers: the
node's row (first seen, models), its operator as payee, its health window, a protocol session,
a ``LiveNode`` in the hub and a ``NodeInfo`` in the router. From there routing, the breaker,
throughput measurement, probes, authenticity checks and points see it as any other node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.cloud.relay import CloudRelay
from coordinator.cloud.sealing import MasterKeyInvalid, SealBroken, TokenSealer
from coordinator.hub.live import LiveNode
from coordinator.hub.membership import Admitted, announce, depart
from coordinator.hub.needs import HUB_NEEDS, HubNeeds
from coordinator.settings.cloud import CloudSettings
from coordinator.store.database import Database
from coordinator.store.health import load_buckets
from coordinator.store.models import CloudNode
from coordinator.store.nodes import record_registration
from protocol import PROTOCOL_VERSION
from protocol.close_codes import CloseCode
from protocol.ids import ModelId, NodeId
from protocol.messages import Hardware, ModelOffer, Register
from protocol.session import CoordinatorSession, NodeState, isoformat_utc

log = logging.getLogger(__name__)

ENGINE = "cloud"
MASTER_KEY_VARIABLE = "KORETEX_CLOUD__MASTER_KEY"


class CloudNodesMisconfigured(Exception):
    """The coordinator cannot serve its stored cloud nodes (no master key, or the wrong one)."""


@dataclass
class CloudFleet:
    """The cloud nodes this coordinator relays, and the sealer of their tokens (if keyed)."""

    sealer: TokenSealer | None
    relays: dict[NodeId, CloudRelay] = field(default_factory=dict)
    retiring: set[asyncio.Task[None]] = field(default_factory=set)
    """Relays replaced by a reconfiguration, finishing the jobs they had."""


CLOUD_FLEET = web.AppKey("cloud_fleet", CloudFleet)


def sealer_from(settings: CloudSettings) -> TokenSealer | None:
    """The sealer under the configured master key; raises :class:`CloudNodesMisconfigured`."""
    if settings.master_key is None:
        return None
    try:
        return TokenSealer.from_setting(settings.master_key.get_secret_value())
    except MasterKeyInvalid as exc:
        raise CloudNodesMisconfigured(f"{MASTER_KEY_VARIABLE}: {exc}") from None


def cloud_register(row: CloudNode, context_length: int, now_text: str) -> Register:
    """What a cloud node "registers" with: its model, its slots, and that it is a cloud upstream.

    Nothing here is signed: the coordinator itself vouches for the node, having checked the
    upstream when its operator added it.
    """
    return Register(
        protocol_version=PROTOCOL_VERSION, node_id=NodeId(row.node_id), nonce="",
        issued_at=now_text, signature="", agent_version="cloud-relay", engine=ENGINE,
        models=(ModelOffer(model=ModelId(row.model), context_length=context_length),),
        slots=row.concurrency,
        hardware=Hardware(system="cloud", machine="openai-compatible", chip="upstream",
                          cores=0, memory_bytes=0),
    )


async def bring_online(services: HubNeeds, fleet: CloudFleet, row: CloudNode) -> LiveNode:
    """Attach the stored cloud node to the hub and the router.

    An older relay of the same node (a reconfiguration) takes no new jobs from here on but
    finishes those it has, so no answer in flight is cut by an operator's change.
    """
    assert fleet.sealer is not None
    node_id = NodeId(row.node_id)
    older = fleet.relays.pop(node_id, None)
    now = services.clock.now()
    priced = services.catalogue.get(row.model)
    context_length = priced.model.context_length if priced is not None else 1
    register = cloud_register(row, context_length, isoformat_utc(now))
    async with services.database.session() as db, db.begin():
        node_row = await record_registration(db, register, now)
        node_row.operator_account_id = row.account_id  # its earnings go to its operator
        window_start = now - timedelta(days=services.settings.routing.health_window_days)
        admitted = Admitted(
            payee_account_id=row.account_id, first_seen=node_row.first_seen,
            model_switched_at=node_row.model_switched_at,
            health=await load_buckets(db, node_id, int(window_start.timestamp())),
            slots=row.concurrency, declared_tok_s=None,
            examined=False,  # the coordinator checked the upstream when it was added
        )
    relay = CloudRelay(
        base_url=row.base_url, upstream_model=row.upstream_model, resume=row.resume,
        concurrency=row.concurrency, sealed_token=row.token_sealed, sealer=fleet.sealer,
        settings=services.settings.cloud, hub=services.hub, clock=services.clock,
    )
    session = CoordinatorSession(
        domain=services.settings.domain, nonce="", opened_at=now, state=NodeState.ACTIVE,
        node_id=node_id,
    )
    node = LiveNode(
        node_id=node_id, register=register, session=session, send=relay.send, close=relay.close,
        connected_at=now, payee_account_id=row.account_id, first_seen=admitted.first_seen,
        model_switched_at=admitted.model_switched_at,
    )
    relay.node = node
    fleet.relays[node_id] = relay
    announce(services, node, admitted, now)
    if older is not None:
        task = asyncio.create_task(older.retire(services.settings.cloud.reconfigure_grace_s))
        fleet.retiring.add(task)
        task.add_done_callback(fleet.retiring.discard)
    log.info("cloud node %s online serving %s", node_id, row.model)
    return node


async def take_offline(services: HubNeeds, fleet: CloudFleet, node_id: NodeId, reason: str) -> None:
    """Detach the cloud node from the hub and the router; its jobs in flight end as lost."""
    relay = fleet.relays.pop(node_id, None)
    if relay is None:
        return
    if relay.node is not None:
        await depart(services, relay.node, reason)
    await relay.close(CloseCode.CLOUD_NODE_REMOVED, reason)
    log.info("cloud node %s offline: %s", node_id, reason)


async def stored_cloud_nodes(db: AsyncSession) -> list[CloudNode]:
    return list((await db.scalars(select(CloudNode).order_by(CloudNode.node_id))).all())


async def check_stored_tokens(database: Database, sealer: TokenSealer | None) -> list[CloudNode]:
    """Every stored cloud node, once each token is known to open; raises
    :class:`CloudNodesMisconfigured` with what to do when they cannot be served."""
    async with database.session() as db:
        rows = await stored_cloud_nodes(db)
    if rows and sealer is None:
        raise CloudNodesMisconfigured(
            f"{len(rows)} cloud node(s) are stored but {MASTER_KEY_VARIABLE} is not set: set it"
            " to the master key their upstream tokens were sealed with"
        )
    for row in rows:
        assert sealer is not None
        try:
            sealer.open(row.token_sealed)
        except SealBroken:
            raise CloudNodesMisconfigured(
                f"cloud node {row.node_id}'s upstream token does not open under"
                f" {MASTER_KEY_VARIABLE}: set the master key it was sealed with"
                " (after `keys rotate-master`, the new one)"
            ) from None
    return rows


async def cloud_nodes_online(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: bring every stored cloud node online; take them offline on shutdown."""
    services = app[HUB_NEEDS]
    sealer = sealer_from(services.settings.cloud)
    rows = await check_stored_tokens(services.database, sealer)
    fleet = CloudFleet(sealer)
    app[CLOUD_FLEET] = fleet
    for row in rows:
        await bring_online(services, fleet, row)
    yield
    for task in list(fleet.retiring):
        task.cancel()
    await asyncio.gather(*fleet.retiring, return_exceptions=True)
    for node_id in list(fleet.relays):
        await take_offline(services, fleet, node_id, "coordinator stopping")


async def rotate_master_key(database: Database, old: TokenSealer, new: TokenSealer) -> int:
    """Re-seal every stored upstream token under ``new``, in one transaction; returns how many.

    Raises :class:`CloudNodesMisconfigured` (and changes nothing) if any token does not open
    under ``old``.
    """
    async with database.session() as db, db.begin():
        rows = await stored_cloud_nodes(db)
        for row in rows:
            try:
                token = old.open(row.token_sealed)
            except SealBroken:
                raise CloudNodesMisconfigured(
                    f"cloud node {row.node_id}'s upstream token does not open under the current"
                    f" {MASTER_KEY_VARIABLE}: nothing was changed"
                ) from None
            row.token_sealed = new.seal(token)
        return len(rows)

