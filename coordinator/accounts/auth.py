"""Consumer authentication: the API key on ``/v1`` routes (a bearer token or ``x-api-key``)."""

from __future__ import annotations

from aiohttp import web

from coordinator.accounts.api_keys import KeyOwner
from coordinator.accounts.cookies import cookie_session_token
from coordinator.accounts.needs import ACCOUNT_NEEDS
from coordinator.accounts.sessions import SESSION_PREFIX, session_account
from coordinator.errors import AuthenticationFailed
from coordinator.limits.enforce import limit_key


async def require_api_key(request: web.Request) -> KeyOwner:
    """The key's owner; also charges the key's per-minute request limit (429 past it).

    The key comes as ``Authorization: Bearer <key>`` (OpenAI's clients) or ``x-api-key``
    (Anthropic's)."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header and request.headers.get("x-api-key"):
        scheme, secret = "bearer", request.headers["x-api-key"]
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
        )
    services = request.app[ACCOUNT_NEEDS]
    owner = await services.keys.authenticate(
        secret.strip(), services.clock.monotonic(), services.clock.now()
    )
    if owner is None:
        raise AuthenticationFailed("invalid or revoked API key")
    await limit_key(request, owner.key_id)
    return owner


async def require_session(request: web.Request) -> int:
    """The signed-in account behind ``Authorization: Bearer <session token>`` or, from a browser,
    the session cookie (state-changing requests must also carry the CSRF header)."""
    token = session_token(request)
    if token is None or not token.startswith(SESSION_PREFIX):
        raise AuthenticationFailed("sign in first: send 'Authorization: Bearer <session token>'")
    services = request.app[ACCOUNT_NEEDS]
    account_id = await session_account(services.database, token, services.clock.now())
    if account_id is None:
        raise AuthenticationFailed("session expired or signed out: sign in again")
    return account_id


def session_token(request: web.Request) -> str | None:
    """The session token this request presents: the bearer header first, else the cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    return cookie_session_token(request)
