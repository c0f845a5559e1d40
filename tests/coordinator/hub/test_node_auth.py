"""Node authentication over the real websocket: only a fresh, correctly signed register joins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest
from support.cluster import RunningCoordinator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol.close_codes import CloseCode
from protocol.messages import (
    Challenge,
    Hardware,
    ModelOffer,
    Registered,
    decode_coordinator_message,
    encode,
)
from protocol.session import AgentSession, Offer

OFFER = Offer(
    agent_version="test", engine="scripted",
    models=(ModelOffer(model="gemma-3-270m", context_length=2048),),  # type: ignore[arg-type]
    slots=1, hardware=Hardware(system="Linux", machine="x86_64", chip="test", cores=1,
                               memory_bytes=1),
)


def ws_url(coordinator: RunningCoordinator) -> str:
    return f"ws://127.0.0.1:{coordinator.port}/v1/nodes/connect"


async def challenge_of(ws: ClientConnection) -> Challenge:
    message = decode_coordinator_message(await ws.recv())
    assert isinstance(message, Challenge)
    return message


async def expect_refusal(ws: ClientConnection) -> str:
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.REFUSED
    return closed.value.rcvd.reason


async def test_signed_register_is_accepted(coordinator: RunningCoordinator) -> None:
    session = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
    async with connect(ws_url(coordinator)) as ws:
        challenge = await challenge_of(ws)
        assert challenge.domain == coordinator.settings.domain
        await ws.send(encode(session.answer(challenge, datetime.now(UTC))))
        registered = decode_coordinator_message(await ws.recv())
        assert isinstance(registered, Registered)
        assert registered.node_id == session.node_id
        assert coordinator.services.hub.get(session.node_id) is not None
    # the hub forgets a node once its socket closes
    from support.cluster import wait_for

    await wait_for(lambda: coordinator.services.hub.get(session.node_id) is None, 5)


async def test_forged_signature_is_refused(coordinator: RunningCoordinator) -> None:
    victim = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
    forger = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
    async with connect(ws_url(coordinator)) as ws:
        challenge = await challenge_of(ws)
        forged = forger.answer(challenge, datetime.now(UTC)).model_copy(
            update={"node_id": victim.node_id}
        )
        await ws.send(encode(forged))
        assert "signature" in await expect_refusal(ws)
    assert coordinator.services.hub.get(victim.node_id) is None


async def test_replayed_register_is_refused(coordinator: RunningCoordinator) -> None:
    session = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
    async with connect(ws_url(coordinator)) as first:
        recorded = session.answer(await challenge_of(first), datetime.now(UTC))
        await first.send(encode(recorded))
        assert isinstance(decode_coordinator_message(await first.recv()), Registered)
    async with connect(ws_url(coordinator)) as replay:
        await challenge_of(replay)  # a fresh nonce the recording does not carry
        await replay.send(encode(recorded))
        assert "nonce" in await expect_refusal(replay)


async def test_stale_signature_is_refused(coordinator: RunningCoordinator) -> None:
    session = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
    async with connect(ws_url(coordinator)) as ws:
        challenge = await challenge_of(ws)
        stale = session.answer(challenge, datetime.now(UTC) - timedelta(hours=1))
        await ws.send(encode(stale))
        assert "stale" in await expect_refusal(ws)


async def test_unknown_weights_for_a_catalogue_model_are_refused(
    coordinator: RunningCoordinator,
) -> None:
    offer = Offer(
        agent_version="test", engine="scripted",
        models=(ModelOffer(model="gemma-3-270m", weights_sha256="0" * 64,  # type: ignore[arg-type]
                           context_length=2048),),
        slots=1, hardware=OFFER.hardware,
    )
    session = AgentSession(nacl.signing.SigningKey.generate(), offer)
    async with connect(ws_url(coordinator)) as ws:
        await ws.send(encode(session.answer(await challenge_of(ws), datetime.now(UTC))))
        assert "weights" in await expect_refusal(ws)


async def test_garbage_before_register_is_refused(coordinator: RunningCoordinator) -> None:
    async with connect(ws_url(coordinator)) as ws:
        await challenge_of(ws)
        await ws.send('{"type": "delta", "job_id": "x", "text": "hi", "tokens": 1}')
        await expect_refusal(ws)
