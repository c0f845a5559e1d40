"""Unmet demand: a funded request refused for want of a node tells the bounty tally."""

from __future__ import annotations

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.gateway.needs import GatewayNeeds
from coordinator.limits.enforce import request_prefix
from protocol.ids import ModelId


def note_refused(
    request: web.Request, services: GatewayNeeds, owner: KeyOwner, model: ModelId
) -> None:
    """Count a request no node could take. Call it only once the request's credit hold was
    granted: a stranger's or an empty account's requests raise no bounty."""
    services.refusals.add(
        model, services.clock.now().timestamp(), account=owner.account_id,
        network=request_prefix(request),
    )
