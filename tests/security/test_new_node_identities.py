"""Node identities are cheap to mint, so new ones are limited per client network: past
``new_nodes_per_minute_per_network`` a fresh key is told to come back later (1013, nothing
stored), while a node already known reconnects freely. Real coordinator, real protocol."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import nacl.signing
from sqlalchemy import func, select
from support.cluster import start_coordinator

from coordinator.store.models import Node
from protocol.ids import ModelId
from protocol.messages import Challenge, Hardware, ModelOffer, decode_coordinator_message
from protocol.messages import encode as encode_message
from protocol.session import AgentSession, Offer

TRY_AGAIN_LATER = 1013
OFFER = Offer(
    agent_version="test", engine="scripted",
    models=(ModelOffer(model=ModelId("smollm2-135m-instruct"), context_length=4096),), slots=1,
    hardware=Hardware(system="Linux", machine="x86_64", chip="x", cores=1, memory_bytes=1),
)


async def register(base_url: str, key: nacl.signing.SigningKey) -> int | None:
    """Register under ``key``; None when registered, else the close code."""
    session = AgentSession(key, OFFER)
    async with aiohttp.ClientSession() as http, http.ws_connect(
        f"{base_url}/v1/nodes/connect"
    ) as ws:
        challenge = decode_coordinator_message((await ws.receive(timeout=10)).data)
        assert isinstance(challenge, Challenge)
        await ws.send_str(encode_message(session.answer(challenge, datetime.now(UTC))))
        answer = await ws.receive(timeout=10)
        if answer.type is aiohttp.WSMsgType.TEXT and '"registered"' in answer.data:
            return None
        return ws.close_code


async def test_new_identities_are_limited_per_network_and_known_nodes_are_not(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        limits={"new_nodes_per_minute_per_network": 2},
    )
    try:
        keys = [nacl.signing.SigningKey.generate() for _ in range(3)]
        assert await register(coordinator.base_url, keys[0]) is None
        assert await register(coordinator.base_url, keys[1]) is None
        assert await register(coordinator.base_url, keys[2]) == TRY_AGAIN_LATER
        for _ in range(3):  # known identities come back as often as they like
            assert await register(coordinator.base_url, keys[0]) is None
        async with coordinator.services.database.session() as session:
            stored = await session.scalar(select(func.count()).select_from(Node))
        assert stored == 2, "the refused identity left no row behind"
    finally:
        await coordinator.stop()
