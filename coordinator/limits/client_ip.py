"""Who the client is: the peer address, or what a trusted proxy says in X-Forwarded-For."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Sequence[str]) -> tuple[Network, ...]:
    """``["127.0.0.1", "10.0.0.0/8"]`` → networks (a bare address is a one-address network)."""
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The address to limit by.

    X-Forwarded-For is honoured only when the peer is a trusted proxy, and then read from the
    right: each trusted hop is skipped, and the first address a trusted hop did not vouch for is
    the client (anything left of it was written by the client and may be forged).
    """
    address = peer or "unknown"
    if forwarded_for is None or not _trusted(address, proxies):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if not hop:
            continue
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # garbage from a proxy we trust: fall back to the proxy itself
        if not _trusted(hop, proxies):
            return hop
        address = hop
    return address
