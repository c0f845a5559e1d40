"""The cloud-node API: an operator's upstreams, added only once they answer a real completion.

    POST   /v1/account/cloud-nodes        (session) CreateCloudNode -> 201 CloudNodeView
    GET    /v1/account/cloud-nodes        (session)                 -> CloudNodeList
    GET    /v1/account/cloud-nodes/{id}   (session)                 -> CloudNodeView
    PATCH  /v1/account/cloud-nodes/{id}   (session) UpdateCloudNode -> CloudNodeView
    DELETE /v1/account/cloud-nodes/{id}   (session)                 -> 204

Another account's cloud node is answered exactly as an unknown one (404). The token is sealed
before it is stored and appears in no reply, log line or error message.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordinator.accounts.auth import require_session
from coordinator.cloud.check import check_upstream
from coordinator.cloud.fleet import CLOUD_FLEET, CloudFleet, bring_online, take_offline
from coordinator.cloud.schemas import CloudNodeList, CloudNodeView, CreateCloudNode, UpdateCloudNode
from coordinator.cloud.sealing import TokenSealer, last_four
from coordinator.errors import CloudNodesUnavailable, InvalidRequest, NotFound
from coordinator.hub.needs import HUB_NEEDS, HubNeeds
from coordinator.json_http import json_reply, read_body
from coordinator.limits.enforce import limit_ip
from coordinator.store.models import CloudNode
from protocol.ids import NodeId

NODE_ID_PREFIX = "cloud-"


def new_cloud_node_id() -> str:
    """A stable id for a new cloud node; it is the node id routing, ledger and points use."""
    return NODE_ID_PREFIX + secrets.token_hex(8)


def view(row: CloudNode, fleet: CloudFleet) -> CloudNodeView:
    return CloudNodeView(
        id=row.node_id, model=row.model, upstream_model=row.upstream_model,
        base_url=row.base_url, concurrency=row.concurrency, resume=row.resume,
        token_last4=row.token_last4, online=NodeId(row.node_id) in fleet.relays,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def _sealer(fleet: CloudFleet) -> TokenSealer:
    if fleet.sealer is None:
        raise CloudNodesUnavailable(
            "cloud nodes are disabled on this coordinator: its operator has not set a master key"
        )
    return fleet.sealer


def _check_offer(services: HubNeeds, model: str, concurrency: int) -> None:
    if services.catalogue.get(model) is None:
        raise InvalidRequest(f"{model!r} is not a catalogue model", param="model")
    limit = services.settings.cloud.max_concurrency
    if concurrency > limit:
        raise InvalidRequest(
            f"concurrency may be at most {limit} on this coordinator", param="concurrency"
        )


async def create_cloud_node(request: web.Request) -> web.Response:
    """Check the upstream with a real completion, then store it sealed and bring it online."""
    await limit_ip(request)  # each one makes the coordinator call out to a URL of the caller's
    account_id = await require_session(request)
    services, fleet = request.app[HUB_NEEDS], request.app[CLOUD_FLEET]
    sealer = _sealer(fleet)
    body = await read_body(request, CreateCloudNode)
    _check_offer(services, body.model, body.concurrency)
    token = body.token.get_secret_value()
    await check_upstream(body.base_url, token, body.upstream_model, services.settings.cloud)
    now = services.clock.now()
    row = CloudNode(
        node_id=new_cloud_node_id(), account_id=account_id, base_url=body.base_url,
        model=body.model, upstream_model=body.upstream_model, concurrency=body.concurrency,
        resume=body.resume, token_sealed=sealer.seal(token), token_last4=last_four(token),
        created_at=now, updated_at=now,
    )
    async with services.database.session() as db, db.begin():
        db.add(row)
    await bring_online(services, fleet, row)
    return json_reply(view(row, fleet), status=201)


async def list_cloud_nodes(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    services, fleet = request.app[HUB_NEEDS], request.app[CLOUD_FLEET]
    async with services.database.session() as db:
        rows = (await db.scalars(
            select(CloudNode).where(CloudNode.account_id == account_id)
            .order_by(CloudNode.created_at, CloudNode.node_id)
        )).all()
    return json_reply(CloudNodeList(data=[view(row, fleet) for row in rows]))


async def get_cloud_node(request: web.Request) -> web.Response:
    account_id = await require_session(request)
    services, fleet = request.app[HUB_NEEDS], request.app[CLOUD_FLEET]
    async with services.database.session() as db:
        row = await _owned(db, request, account_id)
    return json_reply(view(row, fleet))


async def update_cloud_node(request: web.Request) -> web.Response:
    """Change a cloud node; a new URL, token or upstream model is checked again first."""
    await limit_ip(request)
    account_id = await require_session(request)
    services, fleet = request.app[HUB_NEEDS], request.app[CLOUD_FLEET]
    sealer = _sealer(fleet)
    body = await read_body(request, UpdateCloudNode)
    async with services.database.session() as db:
        current = await _owned(db, request, account_id)
    base_url = body.base_url or current.base_url
    upstream_model = body.upstream_model or current.upstream_model
    model = body.model or current.model
    concurrency = body.concurrency or current.concurrency
    _check_offer(services, model, concurrency)
    token = body.token.get_secret_value() if body.token is not None else None
    moved = base_url != current.base_url or upstream_model != current.upstream_model
    if token is not None or moved:
        await check_upstream(
            base_url, token if token is not None else sealer.open(current.token_sealed),
            upstream_model, services.settings.cloud,
        )
    async with services.database.session() as db, db.begin():
        row = await _owned(db, request, account_id)
        row.base_url, row.upstream_model, row.model = base_url, upstream_model, model
        row.concurrency = concurrency
        if body.resume is not None:
            row.resume = body.resume
        if token is not None:
            row.token_sealed, row.token_last4 = sealer.seal(token), last_four(token)
        row.updated_at = services.clock.now()
    await bring_online(services, fleet, row)  # replaces the running relay
    return json_reply(view(row, fleet))


async def delete_cloud_node(request: web.Request) -> web.Response:
    """Take the cloud node offline and forget its upstream (its earnings history stays)."""
    account_id = await require_session(request)
    services, fleet = request.app[HUB_NEEDS], request.app[CLOUD_FLEET]
    async with services.database.session() as db, db.begin():
        row = await _owned(db, request, account_id)
        await db.delete(row)
    await take_offline(services, fleet, NodeId(row.node_id), "cloud node removed by its operator")
    return web.Response(status=204)


async def _owned(db: AsyncSession, request: web.Request, account_id: int) -> CloudNode:
    node_id = request.match_info["node_id"]
    row = await db.scalar(
        select(CloudNode).where(CloudNode.node_id == node_id[:64],
                                CloudNode.account_id == account_id)
    )
    if row is None:
        raise NotFound(f"no cloud node {node_id[:64]!r} on this account", param="id")
    return row


def add_cloud_node_routes(app: web.Application) -> None:
    app.router.add_post("/v1/account/cloud-nodes", create_cloud_node)
    app.router.add_get("/v1/account/cloud-nodes", list_cloud_nodes)
    app.router.add_get("/v1/account/cloud-nodes/{node_id}", get_cloud_node)
    app.router.add_patch("/v1/account/cloud-nodes/{node_id}", update_cloud_node)
    app.router.add_delete("/v1/account/cloud-nodes/{node_id}", delete_cloud_node)
