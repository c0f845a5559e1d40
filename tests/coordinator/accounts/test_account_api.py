"""The account API end to end: keys through the official openai client, ledger, usage, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from support.cluster import TIMEOUT_FACTOR, AgentProcess, RunningCoordinator, start_coordinator
from support.wallets import Wallet, bearer, sign_in

from coordinator.routing import RoutingConstants
from coordinator.settings.economy import EconomySettings

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Hello"}]
ACCOUNT_ROUTES = [
    ("GET", "/v1/account"),
    ("GET", "/v1/account/ledger"),
    ("GET", "/v1/account/usage"),
    ("GET", "/v1/account/keys"),
    ("POST", "/v1/account/keys"),
    ("DELETE", "/v1/account/keys/1"),
    ("POST", "/v1/auth/logout"),
]


@pytest_asyncio.fixture
async def http(coordinator: RunningCoordinator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as client:
        yield client


def openai_client(coordinator: RunningCoordinator, secret: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{coordinator.base_url}/v1", api_key=secret, max_retries=0,
        timeout=30 * TIMEOUT_FACTOR,
    )


async def mint(http: httpx.AsyncClient, token: str, **body: Any) -> dict[str, Any]:
    response = await http.post("/v1/account/keys", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_keys_are_shown_once_work_at_once_and_stop_at_once(
    coordinator: RunningCoordinator, http: httpx.AsyncClient
) -> None:
    token = (await sign_in(http, Wallet.solders()))["token"]
    created = await mint(http, token, name="laptop", spend_limit_credits=2.5)
    secret = created["secret"]
    assert secret.startswith("ktx-") and created["prefix"] == secret[:12]
    assert created["name"] == "laptop" and created["revoked"] is False
    assert created["spend_limit"] == {"micro_credits": 2_500_000, "credits": 2.5}

    listing = await http.get("/v1/account/keys", headers=bearer(token))
    assert secret not in listing.text
    assert "secret" not in listing.text and "hash" not in listing.text
    [listed] = listing.json()["data"]
    assert {k: listed[k] for k in ("id", "prefix", "name", "created_at")} == {
        k: created[k] for k in ("id", "prefix", "name", "created_at")
    }
    assert listed["spent"]["micro_credits"] == 0 and listed["last_used_at"] is None

    client = openai_client(coordinator, secret)
    assert (await client.models.list()).data == []
    await coordinator.services.keys.flush()  # "last used" is written off the request's path
    listed = (await http.get("/v1/account/keys", headers=bearer(token))).json()["data"][0]
    assert listed["last_used_at"] is not None

    revoked = await http.delete(f"/v1/account/keys/{created['id']}", headers=bearer(token))
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()  # within the key cache's lifetime: forgotten, not waited out
    again = await http.delete(f"/v1/account/keys/{created['id']}", headers=bearer(token))
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    listed = (await http.get("/v1/account/keys", headers=bearer(token))).json()["data"][0]
    assert listed["revoked"] is True


async def test_accounts_cannot_see_or_revoke_each_others_keys(
    coordinator: RunningCoordinator, http: httpx.AsyncClient
) -> None:
    alice = (await sign_in(http, Wallet.solders()))["token"]
    mallory = (await sign_in(http, Wallet.nacl()))["token"]
    key = await mint(http, alice, name="alice's")
    listing = (await http.get("/v1/account/keys", headers=bearer(mallory))).json()
    assert listing == {"object": "list", "data": []}
    for key_id in (str(key["id"]), "999999", "abc", "-1", "²", "9" * 30):
        response = await http.delete(f"/v1/account/keys/{key_id}", headers=bearer(mallory))
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert (await openai_client(coordinator, key["secret"]).models.list()).data == []


async def test_minting_needs_credits_and_a_valid_body(tmp_path: Path, database_url: str) -> None:
    coordinator = await start_coordinator(
        tmp_path, database_url=database_url, economy=EconomySettings(starter_credits=0)
    )
    try:
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            signed_in = await sign_in(http, Wallet.solders())
            assert signed_in["account"]["balance"]["micro_credits"] == 0
            token = signed_in["token"]
            broke = await http.post("/v1/account/keys", json={"name": "x"}, headers=bearer(token))
            assert broke.status_code == 402
            assert broke.json()["error"]["code"] == "insufficient_credits"
            for body, param in (
                ({}, "name"),
                ({"name": ""}, "name"),
                ({"name": "x" * 65}, "name"),
                ({"name": "x", "spend_limit_credits": 0}, "spend_limit_credits"),
                ({"name": "x", "spend_limit_credits": 0.0000001}, "spend_limit_credits"),
                ({"name": "x", "secret": "mine"}, "secret"),
            ):
                bad = await http.post("/v1/account/keys", json=body, headers=bearer(token))
                assert bad.status_code == 400, (body, bad.text)
                assert bad.json()["error"]["param"] == param
            bad_queries = ("limit=0", "limit"), ("limit=x", "limit"), ("before=0", "before")
            for query, param in bad_queries:
                bad = await http.get(f"/v1/account/ledger?{query}", headers=bearer(token))
                assert bad.status_code == 400 and bad.json()["error"]["param"] == param
    finally:
        await coordinator.stop()


async def test_account_routes_need_a_session_not_a_key(
    coordinator: RunningCoordinator, http: httpx.AsyncClient
) -> None:
    api_key = await coordinator.api_key()
    for method, path in ACCOUNT_ROUTES:
        for headers in ({}, bearer(api_key), bearer("kts-forged"), {"Authorization": "Basic x"}):
            response = await http.request(method, path, headers=headers, json={"name": "x"})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["type"] == "authentication_error"


@pytest_asyncio.fixture
async def paid_network(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[RunningCoordinator, AgentProcess]]:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    agent = AgentProcess.scripted(coordinator, tmp_path / "agent", "--delay", "0")
    try:
        await agent.start()
        yield coordinator, agent
    finally:
        await agent.stop()
        await coordinator.stop()


async def test_ledger_and_usage_account_for_every_call_exactly(
    paid_network: tuple[RunningCoordinator, AgentProcess],
) -> None:
    coordinator, agent = paid_network
    starter = coordinator.settings.economy.starter_credits
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        token = (await sign_in(http, Wallet.solders()))["token"]
        keys = [await mint(http, token, name=name) for name in ("batch", "chat")]
        reported: dict[int, list[tuple[int, int]]] = {key["id"]: [] for key in keys}
        for key, max_tokens in ((keys[0], 3), (keys[0], 5), (keys[1], 4), (keys[0], 2)):
            completion = await openai_client(coordinator, key["secret"]).chat.completions.create(
                model=MODEL, messages=PROMPT, max_tokens=max_tokens,  # type: ignore[arg-type]
            )
            assert completion.usage is not None
            assert completion.usage.completion_tokens == max_tokens
            reported[key["id"]].append(
                (completion.usage.prompt_tokens, completion.usage.completion_tokens)
            )
        await coordinator.services.ledger.flush()

        def cost(calls: list[tuple[int, int]]) -> int:
            return sum(prompt * 10 + completion * 20 for prompt, completion in calls)

        all_calls = [call for calls in reported.values() for call in calls]
        usage = (await http.get("/v1/account/usage", headers=bearer(token))).json()
        assert usage["total"]["calls"] == len(all_calls)
        assert usage["total"]["spent"]["micro_credits"] == cost(all_calls)
        for entry in usage["by_key"]:
            calls = reported[entry["key_id"]]
            assert entry["name"] in ("batch", "chat")
            assert entry["calls"] == len(calls)
            assert entry["prompt_tokens"] == sum(p for p, _ in calls)
            assert entry["completion_tokens"] == sum(c for _, c in calls)
            assert entry["spent"]["micro_credits"] == cost(calls)
            assert [m["model"] for m in entry["models"]] == [MODEL]
        assert {e["key_id"] for e in usage["by_key"]} == set(reported)
        [per_model] = usage["by_model"]
        assert per_model["model"] == MODEL and per_model["calls"] == len(all_calls)
        assert per_model["completion_tokens"] == sum(c for _, c in all_calls)

        account = (await http.get("/v1/account", headers=bearer(token))).json()
        assert account["balance"]["micro_credits"] == starter - cost(all_calls)
        assert account["available"] == account["balance"]
        assert account["spend"]["micro_credits"] == cost(all_calls)
        assert account["earnings"]["micro_credits"] == 0

        whole = (await http.get("/v1/account/ledger?limit=200", headers=bearer(token))).json()
        assert not whole["has_more"] and whole["next_before"] is None
        paged, before = [], None
        while True:
            query = "limit=2" + (f"&before={before}" if before else "")
            page = (await http.get(f"/v1/account/ledger?{query}", headers=bearer(token))).json()
            paged.extend(page["data"])
            if not page["has_more"]:
                break
            before = page["next_before"]
        assert paged == whole["data"]
        ids = [entry["id"] for entry in paged]
        assert ids == sorted(set(ids), reverse=True), "newest first, no duplicates"
        assert len(paged) == len(all_calls) + 1  # the starter grant, then one charge per call
        assert sum(entry["amount"]["micro_credits"] for entry in paged) == (
            account["balance"]["micro_credits"]
        )
        charges = [entry for entry in paged if entry["kind"] == "charge"]
        assert sorted(
            (e["api_key_id"], e["prompt_tokens"], e["completion_tokens"]) for e in charges
        ) == sorted((k, p, c) for k, calls in reported.items() for p, c in calls)
        assert all(e["model"] == MODEL and e["transaction_kind"] == "call" for e in charges)

        listed = (await http.get("/v1/account/keys", headers=bearer(token))).json()["data"]
        assert {k["id"]: k["spent"]["micro_credits"] for k in listed} == {
            key_id: cost(calls) for key_id, calls in reported.items()
        }
    assert agent.node_id
