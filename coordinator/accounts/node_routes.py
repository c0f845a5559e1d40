"""The signed-in account's nodes, as the dashboard shows them.

    GET /v1/account/nodes  (session)  -> NodeList

Status and measured speed come from the live routing state of this replica; the rest from the
nodes table (every node ever enrolled to the account, online or not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from coordinator.accounts.auth import require_session
from coordinator.accounts.needs import ACCOUNT_NEEDS, AccountNeeds
from coordinator.json_http import json_reply
from coordinator.routing.breaker import BreakerState
from coordinator.store.models import Node
from protocol.ids import ModelId, NodeId

DAY_S = 86_400.0
NodeStatus = Literal["online", "draining", "parked", "offline"]


class TrustRamp(BaseModel):
    """Where the node is on the ramp from ``start`` to full weight over ``ramp_days``."""

    model_config = ConfigDict(frozen=True)

    days: float
    ramp_days: float
    fraction: float


class AccountNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    node_id: str
    status: NodeStatus
    models: list[str]
    engine: str
    chip: str | None
    memory_gb: float | None
    cores: int | None
    measured_tok_s: float | None
    uptime: float | None
    """Share of the routing health window the node was connected, since it was first seen."""
    health_score: float | None
    trust: TrustRamp
    first_seen: datetime
    last_seen: datetime


class NodeList(BaseModel):
    model_config = ConfigDict(frozen=True)

    object: Literal["list"] = "list"
    data: list[AccountNode]


def trust_ramp(first_seen: datetime, now: datetime, start: float, ramp_days: float) -> TrustRamp:
    """Linear from ``start`` on the first day to 1 after ``ramp_days``."""
    days = max(0.0, (now - first_seen).total_seconds() / DAY_S)
    progress = 1.0 if ramp_days <= 0 else min(1.0, days / ramp_days)
    return TrustRamp(days=round(days, 3), ramp_days=ramp_days,
                     fraction=round(start + (1.0 - start) * progress, 4))


def node_view(services: AccountNeeds, row: Node, now: datetime) -> AccountNode:
    node_id = NodeId(row.node_id)
    status: NodeStatus = "offline"
    measured: float | None = None
    uptime: float | None = None
    health: float | None = None
    if node_id in services.router:
        snapshot = services.router.snapshot(node_id, now=services.clock.monotonic())
        measured = snapshot.measured_tok_s
        health = snapshot.health_score
        if snapshot.live:
            status = "draining" if snapshot.draining else "online"
            if snapshot.breaker_state is BreakerState.PARKED:
                status = "parked"
        wall_now = now.timestamp()
        buckets = services.router.health_buckets(node_id, wall_now=wall_now)
        window_s = services.settings.routing.health_window_days * DAY_S
        observed = min(window_s, max(1.0, wall_now - row.first_seen.timestamp()))
        uptime = min(1.0, sum(bucket.online_s for bucket in buckets) / observed)
    if measured is None:
        speeds = [services.throughput.sustained(node_id, ModelId(model)) for model in row.models]
        known = [speed for speed in speeds if speed is not None]
        measured = max(known) if known else None
    hardware = row.hardware or {}
    memory = hardware.get("memory_bytes")
    cores = hardware.get("cores")
    chip = hardware.get("chip")
    economy = services.settings.economy
    return AccountNode(
        node_id=row.node_id, status=status, models=list(row.models), engine=row.engine,
        chip=str(chip) if chip else None,
        memory_gb=round(memory / 2**30, 1) if isinstance(memory, int) else None,
        cores=cores if isinstance(cores, int) else None,
        measured_tok_s=measured, uptime=uptime, health_score=health,
        trust=trust_ramp(row.first_seen, now, economy.trust_start, economy.trust_ramp_days),
        first_seen=row.first_seen, last_seen=row.last_seen,
    )


async def list_account_nodes(request: web.Request) -> web.Response:
    """Every node enrolled to this account, live ones first."""
    account_id = await require_session(request)
    services = request.app[ACCOUNT_NEEDS]
    async with services.database.session() as session:
        rows = (await session.scalars(
            select(Node).where(Node.operator_account_id == account_id).order_by(Node.first_seen)
        )).all()
    now = services.clock.now()
    views = sorted((node_view(services, row, now) for row in rows),
                   key=lambda view: view.status == "offline")
    return json_reply(NodeList(data=views))


def add_account_node_routes(app: web.Application) -> None:
    app.router.add_get("/v1/account/nodes", list_account_nodes)
