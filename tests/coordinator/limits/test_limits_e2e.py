"""Limits on the real coordinator: 429 with Retry-After in the OpenAI error shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import pytest_asyncio
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.wallets import Wallet, bearer, sign_in

from coordinator.limits import LimitSettings
from coordinator.routing import RoutingConstants

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Hello"}]


@pytest_asyncio.fixture
async def limited(tmp_path: Path, database_url: str) -> AsyncIterator[RunningCoordinator]:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
        limits=LimitSettings(
            requests_per_minute_per_key=3, concurrent_streams_per_key=1,
            auth_requests_per_minute_per_ip=4, trusted_proxies=("127.0.0.1",),
        ),
    )
    try:
        yield coordinator
    finally:
        await coordinator.stop()


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["message"]


async def test_requests_per_minute_per_key(limited: RunningCoordinator) -> None:
    secret, other = await limited.api_key("a"), await limited.api_key("b")
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        for _ in range(3):
            assert (await http.get("/v1/models", headers=bearer(secret))).status_code == 200
        assert_rate_limited(await http.get("/v1/models", headers=bearer(secret)))
        # another key of the same caller is its own bucket
        assert (await http.get("/v1/models", headers=bearer(other))).status_code == 200
    client = openai.AsyncOpenAI(
        base_url=f"{limited.base_url}/v1", api_key=secret, max_retries=0
    )
    with pytest.raises(openai.RateLimitError):
        await client.models.list()


async def test_concurrent_streams_per_key(limited: RunningCoordinator, tmp_path: Path) -> None:
    agent = AgentProcess.scripted(limited, tmp_path / "agent", "--delay", "0.05", "--slots", "2")
    await agent.start()
    try:
        client = await limited.client()
        stream = await client.chat.completions.create(
            model=MODEL, messages=PROMPT, max_tokens=40, stream=True  # type: ignore[arg-type]
        )
        first = await anext(aiter(stream))
        assert first.choices
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(
                model=MODEL, messages=PROMPT, max_tokens=2  # type: ignore[arg-type]
            )
        assert refused.value.response.headers["Retry-After"] == "1"
        async for _ in stream:
            pass
        # the slot is given back when the stream ends
        done = await client.chat.completions.create(
            model=MODEL, messages=PROMPT, max_tokens=2  # type: ignore[arg-type]
        )
        assert done.choices[0].message.content
    finally:
        await agent.stop()


async def test_auth_endpoints_are_limited_per_client_ip(limited: RunningCoordinator) -> None:
    wallet = Wallet.solders()
    async with httpx.AsyncClient(base_url=limited.base_url) as http:
        forwarded = {"X-Forwarded-For": "198.51.100.7"}
        statuses = [
            (await http.post(
                "/v1/auth/siws/nonce", json={"address": wallet.address}, headers=forwarded
            )).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        refused = await http.post(
            "/v1/auth/siws/nonce", json={"address": wallet.address}, headers=forwarded
        )
        assert_rate_limited(refused)
    # a different client behind the same trusted proxy has its own bucket: sign-in (2
    # requests) and key creation (1) fit in it, then one more request, then no more keys
    other = {"X-Forwarded-For": "198.51.101.8"}
    async with httpx.AsyncClient(base_url=limited.base_url, headers=other) as http:
        token = (await sign_in(http, Wallet.solders()))["token"]
        created = await http.post("/v1/account/keys", json={"name": "k"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        await http.post("/v1/auth/siws/nonce", json={"address": wallet.address})
        assert_rate_limited(
            await http.post("/v1/account/keys", json={"name": "k2"}, headers=bearer(token))
        )
        # nothing was minted past the limit
        keys = await http.get("/v1/account/keys", headers=bearer(token))
        assert len(keys.json()["data"]) == 1


async def test_wallet_linking_and_cloud_nodes_share_the_per_ip_limit(
    limited: RunningCoordinator,
) -> None:
    """Both make the coordinator work for a caller (a signature check; a call out to a URL the
    caller names), so they count like sign-in and key creation, before anything else is done."""
    cloud_node = {"base_url": "http://127.0.0.1:9/v1", "token": "t", "model": MODEL,
                  "upstream_model": "m", "concurrency": 1}
    client = {"X-Forwarded-For": "198.51.102.9"}
    async with httpx.AsyncClient(base_url=limited.base_url, headers=client) as http:
        token = (await sign_in(http, Wallet.solders()))["token"]  # 2 of 4
        linked = await http.post("/v1/account/wallet", json={}, headers=bearer(token))
        assert linked.status_code == 400, linked.text  # 3 of 4
        added = await http.post("/v1/account/cloud-nodes", json=cloud_node, headers=bearer(token))
        assert added.status_code != 429, added.text  # 4 of 4
        assert_rate_limited(
            await http.post("/v1/account/cloud-nodes", json=cloud_node, headers=bearer(token))
        )
        assert_rate_limited(
            await http.post("/v1/account/wallet", json={}, headers=bearer(token))
        )
        nodes = await http.get("/v1/account/cloud-nodes", headers=bearer(token))
        assert nodes.status_code == 200 and nodes.json()["data"] == []


async def test_untrusted_peers_cannot_pick_their_bucket(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        limits=LimitSettings(auth_requests_per_minute_per_ip=2),  # no trusted proxy
    )
    try:
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            wallet = Wallet.solders()
            statuses = await asyncio.gather(*(
                http.post("/v1/auth/siws/nonce", json={"address": wallet.address},
                          headers={"X-Forwarded-For": f"198.51.100.{i}"})
                for i in range(3)
            ))
            assert sorted(r.status_code for r in statuses) == [200, 200, 429]
    finally:
        await coordinator.stop()
