"""Per-address limits key on the client's network, so rotating addresses inside it buys nothing."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.limits.client_ip import network_prefix


@pytest.mark.parametrize(("address", "prefix"), [
    ("203.0.113.9", "203.0.113.0/24"),
    ("203.0.113.250", "203.0.113.0/24"),
    ("203.0.114.9", "203.0.114.0/24"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),  # case does not make a new bucket
    ("::ffff:203.0.113.9", "203.0.113.0/24"),  # IPv4-mapped: the IPv4 host it maps
    ("::ffff:cb00:7109", "203.0.113.0/24"),
    ("fe80::1%eth0", "fe80::/64"),  # a zone id does not make a new bucket
    (" 198.51.100.7 ", "198.51.100.0/24"),
    ("127.0.0.1", "127.0.0.0/24"),
    ("::1", "::/64"),
    ("unknown", "unknown"),
])
def test_network_prefix(address: str, prefix: str) -> None:
    assert network_prefix(address) == prefix


@given(st.integers(0, 2**128 - 1), st.integers(0, 2**64 - 1))
def test_every_address_of_a_slash_64_is_one_bucket(address: int, host: int) -> None:
    ip = ipaddress.IPv6Address(address)
    if ip.ipv4_mapped is not None:
        return
    sibling = ipaddress.IPv6Address((address >> 64 << 64) | host)
    assert network_prefix(str(ip)) == network_prefix(str(sibling))
    assert ip in ipaddress.ip_network(network_prefix(str(ip)))


@given(st.integers(0, 2**32 - 1), st.integers(0, 255))
def test_every_address_of_a_slash_24_is_one_bucket(address: int, host: int) -> None:
    ip = ipaddress.IPv4Address(address)
    sibling = ipaddress.IPv4Address((address >> 8 << 8) | host)
    assert network_prefix(str(ip)) == network_prefix(str(sibling))
    assert network_prefix(f"::ffff:{ip}") == network_prefix(str(ip))
    assert network_prefix(str(ip)) != network_prefix(str(ipaddress.IPv4Address(address ^ 256)))
