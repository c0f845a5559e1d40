"""A stranger scraping ``/metrics``: refused without the scrape token, and, when no token is set,
refused unless it is a loopback peer that no proxy forwarded (nginx on the same host connects
from loopback, so its forwarding headers give the stranger away)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.cluster import RunningCoordinator, start_coordinator

from coordinator.metrics import scrape_refusal

TOKEN = "scrape-" + "s3cret" * 4


@pytest.mark.parametrize(("token", "authorization", "peer", "forwarded", "status"), [
    (None, None, "127.0.0.1", False, None),
    (None, None, "::1", False, None),
    (None, None, "127.0.0.1", True, 403),
    (None, None, "203.0.113.9", False, 403),
    (None, None, "10.0.0.2", False, 403),
    (None, None, None, False, 403),
    (None, f"Bearer {TOKEN}", "203.0.113.9", False, 403),  # no token set: nothing unlocks it
    (TOKEN, f"Bearer {TOKEN}", "203.0.113.9", True, None),
    (TOKEN, None, "127.0.0.1", False, 401),
    (TOKEN, f"Bearer {TOKEN}x", "127.0.0.1", False, 401),
    (TOKEN, f"bearer {TOKEN[:-1]}", "127.0.0.1", False, 401),
    (TOKEN, "Bearer ", "127.0.0.1", False, 401),
])
def test_who_may_scrape(
    token: str | None, authorization: str | None, peer: str | None, forwarded: bool,
    status: int | None,
) -> None:
    refusal = scrape_refusal(token, authorization, peer, forwarded)
    assert (None if refusal is None else refusal[0]) == status


async def test_without_a_token_only_an_unforwarded_loopback_peer_is_served(
    coordinator: RunningCoordinator,
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        direct = await http.get("/metrics")
        assert direct.status_code == 200 and "koretex_http_requests" in direct.text
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            proxied = await http.get("/metrics", headers={header: "198.51.100.7"})
            assert proxied.status_code == 403, header
            assert "koretex_" not in proxied.text and "KORETEX_METRICS__TOKEN" in proxied.text


async def test_with_a_token_every_scrape_needs_it(tmp_path: Path, database_url: str) -> None:
    running = await start_coordinator(tmp_path, database_url=database_url,
                                      metrics={"token": TOKEN})
    try:
        async with httpx.AsyncClient(base_url=running.base_url) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": f"Basic {TOKEN}"}):
                refused = await http.get("/metrics", headers=headers)
                assert refused.status_code == 401
                assert refused.headers["WWW-Authenticate"].startswith("Bearer")
                assert "koretex_" not in refused.text
            served = await http.get("/metrics", headers={
                "Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "198.51.100.7",
            })
            assert served.status_code == 200 and "koretex_http_requests" in served.text
    finally:
        await running.stop()
