"""Enrolling nodes: a signed-in account mints a one-time token, a real agent redeems it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import nacl.signing
from sqlalchemy import select
from support.cluster import REPO, AgentProcess, RunningCoordinator, start_coordinator
from support.enrollment import mint, new_wallet, signed_in
from support.ledger_audit import audit
from websockets.asyncio.client import connect

from coordinator.accounts.enrollment import TRANSFER_KIND, install_command
from coordinator.clock import ShiftedClock
from coordinator.settings import CoordinatorSettings
from coordinator.store.models import Account, LedgerEntry, LedgerTransaction, Node
from protocol.messages import (
    Challenge,
    Hardware,
    ModelOffer,
    Registered,
    decode_coordinator_message,
    encode,
)
from protocol.session import AgentSession, Offer

EX_CONFIG = 78


async def node_row(coordinator: RunningCoordinator, node_id: str) -> Node:
    async with coordinator.services.database.session() as session:
        node = await session.get(Node, node_id)
    assert node is not None
    return node


async def balance(coordinator: RunningCoordinator, account_id: int) -> int:
    async with coordinator.services.database.session() as session:
        value = await session.scalar(select(Account.balance).where(Account.id == account_id))
    return int(value or 0)


def enrolling_agent(
    coordinator: RunningCoordinator, directory: Path, token: str | None
) -> AgentProcess:
    args = ("--enrollment-token", token) if token else ()
    return AgentProcess.scripted(coordinator, directory, *args)


async def refused(agent: AgentProcess) -> str:
    """Start an agent that must be refused; its log (the reason) once it has exited."""
    await agent.start(wait=False)
    assert await agent.wait_exit(30) == EX_CONFIG
    assert agent.coordinator.services.hub.get(agent.node_id) is None  # type: ignore[arg-type]
    return agent.log_text()


# --- minting ---------------------------------------------------------------------------------


async def test_a_session_mints_a_one_time_token_with_its_install_command(
    coordinator: RunningCoordinator,
) -> None:
    _, session_token = await signed_in(coordinator)
    before = datetime.now(UTC)
    minted = await mint(coordinator, session_token)
    token = minted["token"]
    assert token.startswith("kte-") and len(token) > 40
    expires_at = datetime.fromisoformat(minted["expires_at"])
    ttl = timedelta(seconds=coordinator.settings.enrollment_ttl_s)
    assert before + ttl - timedelta(seconds=5) <= expires_at <= datetime.now(UTC) + ttl
    base = coordinator.settings.public_base_url
    assert minted["install_command"] == (
        f"curl -fsSL {base}/install.sh | sh -s -- --token {token} --coordinator {base}"
    )
    second = await mint(coordinator, session_token)
    assert second["token"] != token


async def test_minting_needs_a_session(coordinator: RunningCoordinator) -> None:
    api_key = await coordinator.api_key()
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": f"Bearer {api_key}"},
                        {"Authorization": "Bearer kts-not-a-session"}):
            async with http.post(f"{coordinator.base_url}/v1/account/enrollments",
                                 headers=headers) as response:
                assert response.status == 401
                assert (await response.json())["error"]["type"] == "authentication_error"


def test_the_install_command_quotes_what_the_shell_would_split() -> None:
    assert install_command("https://k.example/", "kte-abc") == (
        "curl -fsSL https://k.example/install.sh | sh -s -- --token kte-abc "
        "--coordinator https://k.example"
    )
    assert "'https://k.example/a b/install.sh'" in install_command("https://k.example/a b", "t")


def test_the_public_url_defaults_to_the_listening_address() -> None:
    assert CoordinatorSettings(host="10.1.2.3", port=9000).public_base_url == (
        "http://10.1.2.3:9000"
    )
    configured = CoordinatorSettings(public_url="https://koretex.example/")
    assert configured.public_base_url == "https://koretex.example"


async def test_the_installer_is_served_as_a_shell_script(coordinator: RunningCoordinator) -> None:
    async with aiohttp.ClientSession() as http, http.get(
        f"{coordinator.base_url}/install.sh"
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/x-shellscript"
        assert await response.text() == (REPO / "install.sh").read_text()


# --- redeeming -------------------------------------------------------------------------------


async def test_a_node_enrolls_once_and_keeps_its_token_for_reconnects(
    coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    account_id, session_token = await signed_in(coordinator)
    token = (await mint(coordinator, session_token))["token"]
    agent = enrolling_agent(coordinator, tmp_path / "node", token)
    await agent.start()
    try:
        assert (await node_row(coordinator, agent.node_id)).operator_account_id == account_id
        live = coordinator.services.hub.get(agent.node_id)  # type: ignore[arg-type]
        assert live is not None and live.payee_account_id == account_id
    finally:
        await agent.stop()
    # The same node presents the same token again on restart: still welcome.
    again = enrolling_agent(coordinator, tmp_path / "node", token)
    again.node_id = agent.node_id
    await again.start()
    await again.stop()
    # Any other node presenting it is refused, and says why.
    thief = enrolling_agent(coordinator, tmp_path / "thief", token)
    assert "already used by another node" in await refused(thief)
    async with coordinator.services.database.session() as session:
        assert await session.get(Node, thief.node_id) is None


async def test_unknown_and_expired_tokens_are_refused(tmp_path: Path, database_url: str) -> None:
    clock = ShiftedClock()
    running = await start_coordinator(
        tmp_path / "coordinator", clock=clock, database_url=database_url,
    )
    try:
        _, session_token = await signed_in(running)
        # Minted a little over its lifetime ago (the node's signature must stay fresh).
        ago = timedelta(seconds=running.settings.enrollment_ttl_s + 1)
        clock.advance(-ago)
        token = (await mint(running, session_token))["token"]
        clock.advance(ago)
        assert "expired" in await refused(enrolling_agent(running, tmp_path / "late", token))
        unknown = enrolling_agent(running, tmp_path / "guess", "kte-" + secrets.token_urlsafe(32))
        assert "unknown enrollment token" in await refused(unknown)
    finally:
        await running.stop()


async def test_a_node_cannot_change_hands(coordinator: RunningCoordinator, tmp_path: Path) -> None:
    first_account, first_session = await signed_in(coordinator)
    _, second_session = await signed_in(coordinator)
    agent = enrolling_agent(coordinator, tmp_path / "node",
                            (await mint(coordinator, first_session))["token"])
    await agent.start()
    await agent.stop()
    second_token = (await mint(coordinator, second_session))["token"]
    moved = enrolling_agent(coordinator, tmp_path / "node", second_token)
    moved.node_id = agent.node_id
    assert "already enrolled by another account" in await refused(moved)
    assert (await node_row(coordinator, agent.node_id)).operator_account_id == first_account
    # The refusal rolled back: the second account's token still enrolls a fresh node.
    fresh = enrolling_agent(coordinator, tmp_path / "fresh", second_token)
    await fresh.start()
    await fresh.stop()


async def test_pay_earned_before_enrollment_moves_to_the_operator(
    coordinator: RunningCoordinator, tmp_path: Path
) -> None:
    agent = enrolling_agent(coordinator, tmp_path / "node", None)
    await agent.start()
    try:
        client = await coordinator.client()
        reply = await client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}],
            max_tokens=20,
        )
        assert reply.usage is not None and reply.usage.completion_tokens == 20
        await coordinator.services.ledger.flush()
    finally:
        await agent.stop()
    earnings_account = (await node_row(coordinator, agent.node_id)).earnings_account_id
    assert earnings_account is not None
    earned = await balance(coordinator, earnings_account)
    assert earned > 0

    operator, session_token = await signed_in(coordinator)
    enrolled = enrolling_agent(coordinator, tmp_path / "node",
                               (await mint(coordinator, session_token))["token"])
    enrolled.node_id = agent.node_id
    await enrolled.start()
    await enrolled.stop()

    assert await balance(coordinator, earnings_account) == 0
    assert await balance(coordinator, operator) == earned
    async with coordinator.services.database.session() as session:
        transfers = (await session.scalars(
            select(LedgerTransaction).where(LedgerTransaction.kind == "transfer")
        )).all()
        assert len(transfers) == 1
        entries = (await session.execute(
            select(LedgerEntry.account_id, LedgerEntry.amount, LedgerEntry.kind,
                   LedgerEntry.node_id)
            .where(LedgerEntry.transaction_id == transfers[0].id).order_by(LedgerEntry.amount)
        )).all()
    assert [tuple(e) for e in entries] == [
        (earnings_account, -earned, TRANSFER_KIND, agent.node_id),
        (operator, earned, TRANSFER_KIND, agent.node_id),
    ]
    priced = coordinator.services.catalogue.get("smollm2-135m-instruct")
    assert priced is not None
    price = priced.price
    books = await audit(coordinator.services.database, price.input_per_1m, price.output_per_1m)
    assert books.unbalanced_transactions == 0
    assert books.balance_mismatches == 0
    assert books.negative_balances == 0


async def test_registered_tells_the_node_whom_it_earns_for(
    coordinator: RunningCoordinator,
) -> None:
    wallet = new_wallet()
    _, session_token = await signed_in(coordinator, wallet)
    offer = Offer(
        agent_version="test", engine="scripted",
        models=(ModelOffer(model="smollm2-135m-instruct", context_length=2048),),  # type: ignore[arg-type]
        slots=1, hardware=Hardware(system="Linux", machine="x86_64", chip="test", cores=1,
                                   memory_bytes=1),
        enrollment_token=(await mint(coordinator, session_token))["token"],
    )
    session = AgentSession(nacl.signing.SigningKey.generate(), offer)
    async with connect(f"ws://127.0.0.1:{coordinator.port}/v1/nodes/connect") as ws:
        challenge = decode_coordinator_message(await ws.recv())
        assert isinstance(challenge, Challenge)
        await ws.send(encode(session.answer(challenge, datetime.now(UTC))))
        registered = decode_coordinator_message(await ws.recv())
    assert isinstance(registered, Registered)
    assert registered.operator == wallet
    assert registered.earned == 0

