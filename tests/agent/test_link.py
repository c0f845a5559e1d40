"""The coordinator URL an operator gives, as the node's websocket endpoint."""

from __future__ import annotations

import pytest

from agent.link import websocket_url


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/nodes/connect"),
        ("https://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("https://koretex.example/", "wss://koretex.example/v1/nodes/connect"),
        ("ws://127.0.0.1:9", "ws://127.0.0.1:9/v1/nodes/connect"),
        ("wss://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("HTTPS://koretex.example", "wss://koretex.example/v1/nodes/connect"),
        ("https://example.com/koretex", "wss://example.com/koretex/v1/nodes/connect"),
        ("https://example.com/koretex/", "wss://example.com/koretex/v1/nodes/connect"),
        ("wss://koretex.example/v1/nodes/connect", "wss://koretex.example/v1/nodes/connect"),
        ("https://koretex.example/v1/nodes/connect/", "wss://koretex.example/v1/nodes/connect"),
        ("https://example.com/k/v1/nodes/connect", "wss://example.com/k/v1/nodes/connect"),
        ("https://koretex.example/?region=eu", "wss://koretex.example/v1/nodes/connect?region=eu"),
    ],
)
def test_coordinator_urls_become_the_node_endpoint(base: str, url: str) -> None:
    assert websocket_url(base) == url


@pytest.mark.parametrize(
    "base", ["ftp://koretex.example", "koretex.example", "localhost:8080", "", "file:///tmp/x"]
)
def test_other_schemes_are_refused(base: str) -> None:
    with pytest.raises(ValueError, match="unsupported coordinator URL"):
        websocket_url(base)
