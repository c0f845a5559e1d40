"""Where a cloud node may point: public addresses only, unless the operator allows private ones.

An upstream URL is chosen by whoever signs in, and the coordinator calls it; without this guard
it could be aimed at the coordinator's own network (a metadata endpoint, a database port). IP
literals are checked when the URL is accepted; names are checked on every connection by the
resolver, so a name that later resolves to a private address is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp import TCPConnector, ThreadedResolver
from aiohttp.abc import ResolveResult


class PrivateAddressRefused(OSError):
    """The upstream's host is (or resolves only to) a non-public address."""


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def literal_host_is_private(base_url: str) -> bool:
    """Whether the URL names its host by a non-public IP address (names are checked later)."""
    host = urlsplit(base_url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.lower() == "localhost" or host.lower().endswith(".localhost")
    return not is_public(host)


class PublicAddressesOnly(ThreadedResolver):
    """A resolver that hands aiohttp only the public addresses a name resolves to."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await super().resolve(host, port, family)
        public = [answer for answer in answers if is_public(answer["host"])]
        if not public:
            raise PrivateAddressRefused(f"{host} resolves only to private addresses")
        return public


def upstream_connector(limit: int, allow_private: bool) -> TCPConnector:
    """The connection pool for one upstream: ``limit`` connections, public addresses only."""
    resolver = None if allow_private else PublicAddressesOnly()
    return TCPConnector(limit=limit, limit_per_host=limit, resolver=resolver)
