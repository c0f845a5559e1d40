"""``GET /v1/network/bounties``: which models pay a bounty now, and why (public).

Every catalogue model is listed, served or not: a model with demand and no live node is the one
an operator most wants to hear about. The figures are the leader's latest recomputation, as this
replica last read them (:mod:`coordinator.economy.bounty_keeper`).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from coordinator.economy.needs import ECONOMY_NEEDS
from coordinator.json_http import json_reply


class BountyView(BaseModel):
    model: str
    multiplier: float = Field(
        ge=1.0, description="What a serving node's pay is multiplied by (1.0: no bounty); the"
        " extra comes from the bounty pool, scaled by the node's trust, while the pool has funds.",
    )
    configured: bool = Field(description="Fixed by the operator rather than computed.")
    demand_tok_s: float = Field(
        ge=0, description="Tokens delivered per second over the window, over target utilisation."
    )
    capacity_tok_s: float = Field(ge=0, description="What the model's live nodes can produce.")


class NetworkBounties(BaseModel):
    computed_at: datetime | None = Field(description="When the leader last recomputed them.")
    epoch: int = Field(
        ge=0, description="The leader term that computed them: it rises when leadership moves."
    )
    interval_s: float = Field(description="How often they are recomputed.")
    window_s: float = Field(description="The window demand is measured over.")
    target_utilisation: float
    max_multiplier: float
    data: list[BountyView]


async def network_bounties(request: web.Request) -> web.Response:
    services = request.app[ECONOMY_NEEDS]
    economy, board = services.settings.economy, services.bounties
    views = []
    for priced in services.catalogue:
        stored = board.bounties.get(priced.id)
        views.append(BountyView(
            model=priced.id, multiplier=board.multiplier(priced.id, economy),
            configured=priced.id in economy.bounty_multipliers,
            demand_tok_s=stored.demand_tok_s if stored else 0.0,
            capacity_tok_s=stored.capacity_tok_s if stored else 0.0,
        ))
    return json_reply(NetworkBounties(
        computed_at=board.computed_at, epoch=board.epoch, interval_s=economy.bounties.interval_s,
        window_s=economy.bounties.window_s,
        target_utilisation=economy.bounties.target_utilisation,
        max_multiplier=economy.max_bounty_multiplier, data=views,
    ))


def add_bounty_routes(app: web.Application) -> None:
    app.router.add_get("/v1/network/bounties", network_bounties)
