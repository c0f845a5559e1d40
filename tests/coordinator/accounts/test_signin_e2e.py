"""Sign-In With Solana against the real coordinator, signed for real (solders and PyNaCl)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from support.cluster import RunningCoordinator, start_coordinator
from support.wallets import Wallet, ask_nonce, bearer, sign_in, signed

from coordinator.accounts.siws import SignInInput, message_text
from coordinator.clock import ShiftedClock

WALLETS = {"solders": Wallet.solders, "nacl": Wallet.nacl}


@pytest_asyncio.fixture
async def http(coordinator: RunningCoordinator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as client:
        yield client


def refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert reason in error["message"], error["message"]


@pytest.mark.parametrize("make_wallet", WALLETS.values(), ids=WALLETS.keys())
async def test_sign_in_opens_the_account_with_starter_credits_once(
    coordinator: RunningCoordinator, http: httpx.AsyncClient, make_wallet: type[Wallet]
) -> None:
    wallet = make_wallet()  # type: ignore[operator]
    starter = coordinator.settings.economy.starter_credits
    issued = await ask_nonce(http, wallet)
    fields = SignInInput.model_validate(issued["input"])
    assert fields.domain == "localhost" and fields.address == wallet.address
    assert fields.uri == "http://localhost" and fields.chain_id == "solana:mainnet"
    assert issued["message"] == message_text(fields)
    assert fields.expiration_time is not None
    assert datetime.fromisoformat(issued["expires_at"]) == datetime.fromisoformat(
        fields.expiration_time
    )
    assert issued["message"].startswith(
        f"localhost wants you to sign in with your Solana account:\n{wallet.address}\n\n"
    )

    first = (await http.post("/v1/auth/siws/verify", json=signed(wallet, issued["message"])))
    assert first.status_code == 200, first.text
    signed_in = first.json()
    assert signed_in["token"].startswith("kts-")
    account = signed_in["account"]
    assert account["wallet"] == wallet.address
    assert account["balance"] == {"micro_credits": starter, "credits": starter / 1_000_000}
    assert account["available"]["micro_credits"] == starter

    again = await sign_in(http, wallet)
    assert again["token"] != signed_in["token"]
    assert again["account"]["id"] == account["id"]
    for token in (signed_in["token"], again["token"]):
        view = (await http.get("/v1/account", headers=bearer(token))).json()
        assert view["balance"]["micro_credits"] == starter, "the starter grant is given once"
    ledger = (await http.get("/v1/account/ledger", headers=bearer(again["token"]))).json()
    assert [(e["transaction_kind"], e["amount"]["micro_credits"]) for e in ledger["data"]] == [
        ("grant", starter)
    ]


async def test_a_replayed_message_is_refused(http: httpx.AsyncClient) -> None:
    wallet = Wallet.solders()
    body = signed(wallet, (await ask_nonce(http, wallet))["message"])
    assert (await http.post("/v1/auth/siws/verify", json=body)).status_code == 200
    refused(await http.post("/v1/auth/siws/verify", json=body), "nonce already used")


async def test_a_nonce_serves_only_the_address_it_was_issued_to(http: httpx.AsyncClient) -> None:
    wallet, thief = Wallet.nacl(), Wallet.nacl()
    issued = await ask_nonce(http, wallet)
    stolen = SignInInput.model_validate(issued["input"]).model_copy(
        update={"address": thief.address}
    )
    refused(await http.post("/v1/auth/siws/verify", json=signed(thief, message_text(stolen))),
            "never issued to this address")


async def test_an_expired_message_and_session_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    clock = ShiftedClock()

    coordinator = await start_coordinator(tmp_path, clock=clock, database_url=database_url)
    try:
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            wallet = Wallet.solders()
            body = signed(wallet, (await ask_nonce(http, wallet))["message"])
            clock.advance(timedelta(seconds=coordinator.settings.signin_nonce_ttl_s + 1))
            refused(await http.post("/v1/auth/siws/verify", json=body), "expired")

            token = (await sign_in(http, wallet))["token"]
            assert (await http.get("/v1/account", headers=bearer(token))).status_code == 200
            clock.advance(timedelta(seconds=coordinator.settings.session_ttl_s + 1))
            refused(await http.get("/v1/account", headers=bearer(token)), "session expired")
    finally:
        await coordinator.stop()


async def test_a_message_for_another_domain_is_refused_and_spends_no_nonce(
    http: httpx.AsyncClient,
) -> None:
    wallet = Wallet.solders()
    issued = await ask_nonce(http, wallet)
    fields = SignInInput.model_validate(issued["input"])
    for change, reason in (
        ({"domain": "evil.example"}, "domain"),
        ({"uri": "https://evil.example"}, "URI"),
        ({"chain_id": "solana:devnet"}, "Chain ID"),
    ):
        foreign = message_text(fields.model_copy(update=change))
        response = await http.post(
            "/v1/auth/siws/verify", json=signed(wallet, foreign),
            headers={"Host": "evil.example"},  # the request's Host never widens what is accepted
        )
        refused(response, reason)
    genuine = await http.post(
        "/v1/auth/siws/verify", json=signed(wallet, issued["message"]),
        headers={"Host": "evil.example"},
    )
    assert genuine.status_code == 200, "the real nonce is still unspent, whatever the Host"


async def test_tampered_messages_and_wrong_keys_are_refused(http: httpx.AsyncClient) -> None:
    wallet, other = Wallet.solders(), Wallet.nacl()
    message = (await ask_nonce(http, wallet))["message"]
    tampered = signed(wallet, message) | {"message": message.replace("Koretex", "K0retex")}
    refused(await http.post("/v1/auth/siws/verify", json=tampered), "signature does not match")
    by_other = signed(wallet, message, signer=other)
    refused(await http.post("/v1/auth/siws/verify", json=by_other), "signature does not match")
    claimed = signed(other, message)  # other signs wallet's message and presents its own key
    refused(await http.post("/v1/auth/siws/verify", json=claimed), "address")
    garbage = signed(wallet, message) | {"signature": "not-base58!"}
    refused(await http.post("/v1/auth/siws/verify", json=garbage), "signature")
    mangled = signed(wallet, message + "\n")
    refused(await http.post("/v1/auth/siws/verify", json=mangled), "not a Sign-In With Solana")
    # none of that spent the nonce
    genuine = await http.post("/v1/auth/siws/verify", json=signed(wallet, message))
    assert genuine.status_code == 200


async def test_bad_bodies_are_400_with_the_parameter(http: httpx.AsyncClient) -> None:
    for body, param in (
        ({"address": "0OIl"}, "address"),
        ({"address": "1" * 32}, "address"),
        ({}, "address"),
        ({"address": Wallet.nacl().address, "extra": 1}, "extra"),
    ):
        response = await http.post("/v1/auth/siws/nonce", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    broken = await http.post("/v1/auth/siws/verify", content=b'{"message": ')
    assert broken.status_code == 400
    assert broken.json()["error"]["type"] == "invalid_request_error"


async def test_logout_ends_the_session(http: httpx.AsyncClient) -> None:
    wallet = Wallet.nacl()
    token = (await sign_in(http, wallet))["token"]
    other = (await sign_in(http, wallet))["token"]
    assert (await http.post("/v1/auth/logout", headers=bearer(token))).status_code == 204
    refused(await http.get("/v1/account", headers=bearer(token)), "signed out")
    refused(await http.post("/v1/auth/logout", headers=bearer(token)), "signed out")
    assert (await http.get("/v1/account", headers=bearer(other))).status_code == 200


async def test_racing_sign_ins_spend_a_nonce_once_and_grant_once(http: httpx.AsyncClient) -> None:
    wallet = Wallet.nacl()
    replayed = signed(wallet, (await ask_nonce(http, wallet))["message"])
    fresh = [signed(wallet, (await ask_nonce(http, wallet))["message"]) for _ in range(3)]
    responses = await asyncio.gather(*(
        http.post("/v1/auth/siws/verify", json=body) for body in [replayed] * 4 + fresh
    ))
    statuses = [r.status_code for r in responses]
    assert statuses[:4].count(200) == 1 and statuses[:4].count(401) == 3
    assert statuses[4:] == [200, 200, 200]
    accounts = {r.json()["account"]["id"] for r in responses if r.status_code == 200}
    assert len(accounts) == 1
    token = next(r.json()["token"] for r in responses if r.status_code == 200)
    ledger = (await http.get("/v1/account/ledger", headers=bearer(token))).json()
    assert [e["transaction_kind"] for e in ledger["data"]] == ["grant"]
