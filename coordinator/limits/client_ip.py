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


IPV4_PREFIX = 24
IPV6_PREFIX = 64


def network_prefix(address: str) -> str:
    """The network a client address belongs to, for limits: its IPv4 /24 or IPv6 /64.

    One host controls a whole IPv6 /64 (and often a /24), so limits keyed on the full address
    let it rotate addresses for free. An IPv4-mapped IPv6 address (``::ffff:203.0.113.9``, what
    a dual-stack listener reports) is the IPv4 host it maps. Anything that is not an address
    (``"unknown"``) is its own bucket.
    """
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    length = IPV4_PREFIX if isinstance(ip, ipaddress.IPv4Address) else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
