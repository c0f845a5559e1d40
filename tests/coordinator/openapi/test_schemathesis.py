"""schemathesis over every operation of /openapi.json, against the real coordinator and a real
(scripted) agent: unauthenticated, with a real API key, and with a real session token.

Checks: no 5xx, every response conforms to the spec (status, content type, headers, schema),
and no operation declaring credentials answers without them (``ignored_auth``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from solders.keypair import Keypair
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.wallets import Wallet, sign_in

from coordinator.cloud.sealing import new_master_key
from coordinator.limits import LimitSettings
from coordinator.routing import RoutingConstants
from coordinator.settings.cloud import CloudSettings
from coordinator.settings.economy import TopupSettings

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Checks that judge business rules the spec cannot express: "positive_data_acceptance" expects a
# 2xx for every schema-valid body, but a valid body may still name a model nobody serves (404),
# a key to revoke that does not exist (404), or spend credits the account lacks (402).
EXCLUDED_CHECKS = "positive_data_acceptance"
LOGOUT = "/v1/auth/logout"


@pytest_asyncio.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
        # a treasury, so top-ups are on (off, they answer 503 by design); the RPC is never asked:
        # no invoice here is ever paid
        topups=TopupSettings(treasury=str(Keypair().pubkey()), poll_interval_s=3600,
                             solana_rpc_url="http://127.0.0.1:9"),
        # a master key, so cloud nodes are on (off, adding one answers 503 by design); upstreams
        # stay public-only, so the fuzzer's base URLs are refused or fail to resolve: a 400
        cloud=CloudSettings(master_key=new_master_key(), check_timeout_s=2, connect_timeout_s=2),
        limits=LimitSettings(
            requests_per_minute_per_key=100_000, auth_requests_per_minute_per_ip=100_000,
            concurrent_streams_per_key=1000,
        ),
    )
    agent = AgentProcess.scripted(coordinator, tmp_path / "agent", "--delay", "0", "--slots", "8")
    try:
        await agent.start()
        yield coordinator
    finally:
        await agent.stop()
        await coordinator.stop()


async def schemathesis(
    coordinator: RunningCoordinator, report: Path, *headers: str, only: str | None = None,
    skip: str | None = None,
) -> str:
    """Run schemathesis over the spec (``only``/``skip``: one path) with these headers."""
    args = [
        str(SCHEMATHESIS), "run", f"{coordinator.base_url}/openapi.json",
        "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
        "--max-examples", "25", "--seed", "1", "--request-timeout", "30",
        "--suppress-health-check", "all", "--no-color",
        "--report", "junit", "--report-dir", str(report),
    ]
    for header in headers:
        args += ["-H", header]
    if only is not None:
        args += ["--include-path", only]
    if skip is not None:
        args += ["--exclude-path", skip]
    report.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(  # cwd: its .schemathesis cache stays there
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    return text


@pytest.mark.slow
async def test_schemathesis_finds_nothing(served: RunningCoordinator, tmp_path: Path) -> None:
    api_key = await served.api_key("fuzzer")
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        session = (await sign_in(http, Wallet.solders()))["token"]
        logout_session = (await sign_in(http, Wallet.solders()))["token"]
    for name, headers in (
        ("anonymous", ()),
        ("api-key", (f"Authorization: Bearer {api_key}",)),
    ):
        await schemathesis(served, tmp_path / name, *headers)
    # Logging out ends the session: the session run leaves it out (else every operation after it
    # would see only 401s), and logout gets its own run with a session of its own.
    await schemathesis(served, tmp_path / "session", f"Authorization: Bearer {session}",
                       skip=LOGOUT)
    await schemathesis(served, tmp_path / "logout", f"Authorization: Bearer {logout_session}",
                       only=LOGOUT)
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        account = await http.get("/v1/account", headers={"Authorization": f"Bearer {session}"})
    assert account.status_code == 200, "the session run must have run signed in throughout"
