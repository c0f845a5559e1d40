"""A node that streams text its tokens do not pay for (zero-token deltas of megabytes, more text
per token than any vocabulary holds, a token count that is not its entries) is closed with a
policy violation (1008) at its first such delta, while another consumer's stream from an honest
node keeps flowing; books audit clean (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import openai
import pytest
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.ledger_audit import audit

from coordinator.routing import RoutingConstants
from protocol.ids import ModelId, NodeId
from protocol.messages import Challenge, Hardware, Job, ModelOffer, decode_coordinator_message
from protocol.messages import encode as encode_message
from protocol.session import AgentSession, Offer

MODEL = "smollm2-135m-instruct"
POLICY_VIOLATION = 1008
ENTRY = {"token_id": 1, "token": "a", "logprob": -0.1}

HOSTILE_DELTAS: dict[str, dict[str, Any]] = {
    "zero_tokens_megabytes": {"text": "x" * 900_000, "tokens": 0},
    "bytes_per_token": {"text": "x" * 65 * 2, "tokens": 2},
    "tokens_not_entries": {"text": "ab", "tokens": 2, "logprobs": [ENTRY]},
}


async def _hostile_node(
    coordinator: RunningCoordinator, delta: dict[str, Any], registered: asyncio.Event,
    attack: asyncio.Event, closed: list[tuple[object, str]],
) -> None:
    offer = Offer(
        agent_version="hostile", engine="scripted",
        models=(ModelOffer(model=ModelId(MODEL), context_length=4096),), slots=1,
        hardware=Hardware(system="Linux", machine="x86_64", chip="x", cores=1, memory_bytes=1),
    )
    session = AgentSession(nacl.signing.SigningKey.generate(), offer)
    async with aiohttp.ClientSession() as http, http.ws_connect(
        f"{coordinator.base_url}/v1/nodes/connect", max_msg_size=0
    ) as ws:
        challenge = decode_coordinator_message((await ws.receive(timeout=10)).data)
        assert isinstance(challenge, Challenge)
        await ws.send_str(encode_message(session.answer(challenge, datetime.now(UTC))))
        assert '"registered"' in (await ws.receive(timeout=10)).data
        registered.set()
        job = decode_coordinator_message((await ws.receive(timeout=30)).data)
        assert isinstance(job, Job)
        await attack.wait()
        with contextlib.suppress(ConnectionError):
            for _ in range(8):  # megabytes in all, unless it is cut off at the first
                await ws.send_str(json.dumps({"type": "delta", "job_id": job.job_id, **delta}))
        closing = await ws.receive(timeout=10)
        closed.append((closing.data, closing.extra or ""))


@pytest.mark.parametrize("attack_name", sorted(HOSTILE_DELTAS))
async def test_a_node_sending_unpaid_text_is_cut_off_while_others_flow(
    tmp_path: Path, database_url: str, attack_name: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    honest = AgentProcess.scripted(
        coordinator, tmp_path / "honest", "--delay", "0.05", "--slots", "2"
    )
    services = coordinator.services
    try:
        client = await coordinator.client("consumer")
        registered, attack, closed = asyncio.Event(), asyncio.Event(), []
        hostile = asyncio.create_task(
            _hostile_node(coordinator, HOSTILE_DELTAS[attack_name], registered, attack, closed)
        )
        await asyncio.wait_for(registered.wait(), 30)
        # The hostile node is the only one yet: this call's job is its (one slot's) job.
        victim = asyncio.create_task(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        ))
        await wait_for(lambda: any(n.channels for n in services.hub.nodes()), 30, "victim job")
        await honest.start()
        honest_stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=20,
            stream=True,
        )
        pieces = 0
        async for chunk in honest_stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces += 1
                if pieces == 2:  # the honest stream is flowing: attack now
                    attack.set()
                    await asyncio.wait_for(hostile, 30)
        assert pieces == 20, "the honest stream kept flowing to the end"
        assert closed and closed[0][0] == POLICY_VIOLATION, closed
        assert "delta" in closed[0][1]
        with contextlib.suppress(openai.APIError):  # taken over by the honest node, or not
            await victim
        await wait_for(lambda: len(services.hub) == 1, 10, "hostile node gone")
        assert services.hub.get(NodeId(honest.node_id)) is not None

        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "again"}], max_tokens=4,
        )
        assert answer.usage is not None and answer.usage.completion_tokens == 4
        result = await audit(services.database, 10, 20)
        assert result.negative_balances == 0 and result.balance_mismatches == 0
    finally:
        await honest.stop()
        await coordinator.stop()
