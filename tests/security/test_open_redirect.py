"""An attacker's sign-in link: ``next`` written to send the browser to another site once it has
signed in. Only a same-origin path is followed; the rest fall back to the dashboard."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.cluster import RunningCoordinator, start_coordinator

from coordinator.accounts.next_path import DEFAULT_NEXT, safe_next
from coordinator.settings.oidc import OidcSettings

FOREIGN = [
    "https://evil.com", "http://evil.com/dashboard", "//evil.com", "///evil.com",
    "/\\evil.com", "\\\\evil.com", "/\t/evil.com", "/\n/evil.com", "/\r//evil.com",
    "/%09/evil.com", "/%0a/evil.com", "/%0D/evil.com", "/%5Cevil.com", "/%5c%5cevil.com",
    "/%2F/evil.com", "/%2f%2fevil.com", "%2F%2Fevil.com", "javascript:alert(1)",
    "evil.com", " /dashboard", "/\x00/evil.com", "/\x7f/evil.com", "/" + "a" * 3000, "",
]
LOCAL = ["/dashboard", "/credits", "/points?day=2026-01-02", "/models#gemma", "/run-a-node",
         "/search?q=a%20b", "/a/b/c"]


@pytest.mark.parametrize("target", FOREIGN)
def test_a_target_off_this_site_falls_back_to_the_dashboard(target: str) -> None:
    assert safe_next(target) == DEFAULT_NEXT


@pytest.mark.parametrize("target", LOCAL)
def test_a_path_on_this_site_is_followed_as_written(target: str) -> None:
    assert safe_next(target) == target


def _next_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["next"][0]


ATTACKS = ["/%09/evil.com", "/\\evil.com", "//evil.com", "https://evil.com"]


async def test_the_sign_in_page_rewrites_a_foreign_next(coordinator: RunningCoordinator) -> None:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        for attack in ATTACKS:
            reply = await http.get("/signin", params={"next": attack, "error": "why"})
            assert reply.status_code == 302, attack
            location = urlsplit(reply.headers["Location"])
            assert (location.scheme, location.netloc, location.path) == ("", "", "/signin")
            assert _next_of(reply.headers["Location"]) == DEFAULT_NEXT
            assert parse_qs(location.query)["error"] == ["why"]  # the rest of the link is kept
        kept = await http.get("/signin", params={"next": "/credits"})
        assert kept.status_code == 200


async def test_the_openid_flow_carries_only_a_local_next(
    tmp_path: Path, database_url: str
) -> None:
    # The provider is unreachable: start sends the browser back to sign-in with the flow's next.
    running = await start_coordinator(
        tmp_path, database_url=database_url,
        oidc=OidcSettings(issuer="http://127.0.0.1:9", client_id="web", client_secret="s"),
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url) as http:
            for attack in ATTACKS:
                start = await http.get("/auth/oidc/start", params={"next": attack})
                assert start.status_code == 302
                assert urlsplit(start.headers["Location"]).path == "/signin"
                assert _next_of(start.headers["Location"]) == DEFAULT_NEXT, attack
            start = await http.get("/auth/oidc/start", params={"next": "/credits"})
            assert _next_of(start.headers["Location"]) == "/credits"
    finally:
        await running.stop()
