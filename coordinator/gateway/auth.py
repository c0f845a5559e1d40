"""Consumer authentication: the ``Authorization: Bearer`` API key on ``/v1`` routes."""

from __future__ import annotations

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.errors import AuthenticationFailed
from coordinator.services import SERVICES


async def require_api_key(request: web.Request) -> KeyOwner:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>'")
    services = request.app[SERVICES]
    owner = await services.keys.authenticate(
        secret.strip(), services.clock.monotonic(), services.clock.now()
    )
    if owner is None:
        raise AuthenticationFailed("invalid or revoked API key")
    return owner
