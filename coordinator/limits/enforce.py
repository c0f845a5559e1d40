"""What handlers call to stay within the limits; each refusal is a 429 with ``Retry-After``.

    limit_key(request, key_id)   every API-key request (``require_api_key`` calls it)
    limit_ip(request)            auth endpoints: the ``ip_limits`` middleware calls it for every
                                 path under ``auth_path_prefixes``; key and enrollment-token
                                 creation call it themselves
    stream_slot(request, key_id) around a completion: at most N in flight per key
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from coordinator.errors import RateLimited
from coordinator.limits.client_ip import Network, client_ip, network_prefix, parse_networks
from coordinator.limits.needs import LIMIT_NEEDS

MINUTE_S = 60.0
DAY_S = 86_400.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.lru_cache(maxsize=8)
def _proxies(specs: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(specs)


def request_ip(request: web.Request) -> str:
    """The client's address, as far as the configured trusted proxies vouch for it."""
    limits = request.app[LIMIT_NEEDS].settings.limits
    return client_ip(
        request.remote, request.headers.get("X-Forwarded-For"), _proxies(limits.trusted_proxies)
    )


async def limit_key(request: web.Request, key_id: int) -> None:
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.requests_per_minute_per_key
    refusal = await services.rates.hit(f"key:{key_id}", 1, limit, MINUTE_S)
    if refusal is not None:
        raise RateLimited(
            f"this API key is limited to {limit} requests per minute",
            retry_after_s=refusal.header,
        )


def request_prefix(request: web.Request) -> str:
    """The client's network (IPv4 /24, IPv6 /64): what per-address limits are keyed on."""
    return network_prefix(request_ip(request))


async def limit_ip(request: web.Request) -> None:
    """Limit auth and credential requests per client network (not per address: see
    :func:`~coordinator.limits.client_ip.network_prefix`)."""
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.auth_requests_per_minute_per_ip
    refusal = await services.rates.hit(f"net:{request_prefix(request)}", 1, limit, MINUTE_S)
    if refusal is not None:
        raise RateLimited(
            f"at most {limit} sign-in and credential requests per minute from one network",
            retry_after_s=refusal.header,
        )


async def limit_account_keys(request: web.Request, account_id: int) -> None:
    """At most ``keys_per_day_per_account`` new API keys a day for one account."""
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.keys_per_day_per_account
    refusal = await services.rates.hit(f"keys:{account_id}", 1, limit, DAY_S)
    if refusal is not None:
        raise RateLimited(
            f"at most {limit} new API keys a day per account", retry_after_s=refusal.header,
        )


async def new_node_allowed(request: web.Request) -> bool:
    """Whether one more node identity never seen before may register from this client network
    now (at most ``new_nodes_per_minute_per_network``): identities are cheap to mint."""
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.new_nodes_per_minute_per_network
    return await services.rates.hit(f"nodes:{request_prefix(request)}", 1, limit, MINUTE_S) is None


async def starter_allowed(request: web.Request) -> bool:
    """Whether a new account opened by this request may have the starter credits: at most
    ``starter_grants_per_day_per_network`` a day from one client network."""
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.starter_grants_per_day_per_network
    refusal = await services.rates.hit(f"starter:{request_prefix(request)}", 1, limit, DAY_S)
    return refusal is None


@asynccontextmanager
async def stream_slot(request: web.Request, key_id: int) -> AsyncIterator[None]:
    services = request.app[LIMIT_NEEDS]
    limit = services.settings.limits.concurrent_streams_per_key
    key = f"key:{key_id}"
    if not await services.streams.enter(key, limit):
        raise RateLimited(
            f"this API key may have at most {limit} completions in flight", retry_after_s=1
        )
    try:
        yield
    finally:
        await services.streams.leave(key)


@web.middleware
async def ip_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Limit every request under the auth prefixes per client IP (new auth routes included)."""
    prefixes = request.app[LIMIT_NEEDS].settings.limits.auth_path_prefixes
    if request.path.startswith(prefixes):
        await limit_ip(request)
    return await handler(request)
