"""Where a cloud node may point: public addresses only, unless the operator allows private ones.

An upstream URL is chosen by whoever signs in, and the coordinator calls it; without this guard
it could be aimed at the coordinator's own network (a metadata endpoint, a database port). IP
literals are checked when the URL is accepted; names are checked on every connection by the
resolver, and every address is checked again as each connection's socket is made (IP literals
included), so a name that later resolves to a private address is refused too. Redirects are never
followed, so no connection goes anywhere but the checked host.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohappyeyeballs import AddrInfoType
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


def public_socket(addr_info: AddrInfoType) -> socket.socket:
    """A socket for one connection attempt, refused unless its address is public.

    aiohttp never asks the resolver about an IP literal, so this (called for every address of
    every connection, literal or resolved) is the check that cannot be stepped around.
    """
    family, kind, proto, _, address = addr_info
    if not is_public(str(address[0])):
        raise PrivateAddressRefused(f"{address[0]} is not a public address")
    return socket.socket(family=family, type=kind, proto=proto)


def upstream_connector(limit: int, allow_private: bool) -> TCPConnector:
    """The connection pool for one upstream: ``limit`` connections, public addresses only.

    Requests on it must pass ``allow_redirects=False``: with no redirect followed, every
    connection is to the upstream's own host, and each one is checked here.
    """
    if allow_private:
        return TCPConnector(limit=limit, limit_per_host=limit)
    return TCPConnector(limit=limit, limit_per_host=limit, resolver=PublicAddressesOnly(),
                        socket_factory=public_socket)
