"""A node that claims 2^40 prompt tokens is disconnected for a malformed message; nothing of its
claim reaches the ledger, and the next honest call settles within 2 s (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import nacl.signing
import openai
from sqlalchemy import func, select
from support.cluster import AgentProcess, start_coordinator, wait_for
from support.ledger_audit import audit

from coordinator.routing import RoutingConstants
from coordinator.store.models import LedgerTransaction
from protocol.ids import ModelId, NodeId
from protocol.messages import Challenge, Hardware, Job, ModelOffer, decode_coordinator_message
from protocol.messages import encode as encode_message
from protocol.session import AgentSession, Offer

MODEL = "smollm2-135m-instruct"
OFFER = Offer(
    agent_version="liar", engine="scripted",
    models=(ModelOffer(model=ModelId(MODEL), context_length=4096),), slots=1,
    hardware=Hardware(system="Linux", machine="x86_64", chip="x", cores=1, memory_bytes=1),
)
POLICY_VIOLATION = 1008


async def test_a_node_claiming_2_to_the_40_prompt_tokens_is_cut_off_and_settlement_goes_on(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    honest = AgentProcess.scripted(coordinator, tmp_path / "honest")
    services = coordinator.services
    try:
        client = await coordinator.client("consumer")
        liar = AgentSession(nacl.signing.SigningKey.generate(), OFFER)
        async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{coordinator.base_url}/v1/nodes/connect"
        ) as ws:
            challenge = decode_coordinator_message((await ws.receive(timeout=10)).data)
            assert isinstance(challenge, Challenge)
            await ws.send_str(encode_message(liar.answer(challenge, datetime.now(UTC))))
            assert '"registered"' in (await ws.receive(timeout=10)).data
            call = asyncio.create_task(client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
            ))
            job = decode_coordinator_message((await ws.receive(timeout=10)).data)
            assert isinstance(job, Job)
            await ws.send_str(json.dumps(
                {"type": "delta", "job_id": job.job_id, "text": "Hi", "tokens": 1}
            ))
            await ws.send_str(json.dumps(
                {"type": "done", "job_id": job.job_id, "finish_reason": "stop",
                 "prompt_tokens": 2**40, "completion_tokens": 1}
            ))
            closing = await ws.receive(timeout=10)
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert closing.data == POLICY_VIOLATION and "malformed" in (closing.extra or "")
        with contextlib.suppress(openai.APIError):  # no other node to take over
            await call
        await wait_for(lambda: services.hub.get(NodeId(liar.node_id)) is None, 10, "liar gone")

        await honest.start()
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4,
        )
        started = time.monotonic()
        async with asyncio.timeout(2):
            while True:
                async with services.database.session() as session:
                    settled = await session.scalar(
                        select(func.count()).select_from(LedgerTransaction)
                        .where(LedgerTransaction.reference == f"call:{answer.id}")
                    )
                if settled:
                    break
                await asyncio.sleep(0.02)
        assert time.monotonic() - started < 2
        async with services.database.session() as session:
            most = await session.scalar(select(func.max(LedgerTransaction.prompt_tokens)))
        assert most is not None and most < 2**31
        result = await audit(services.database, 10, 20)
        assert result.negative_balances == 0 and result.balance_mismatches == 0
        assert result.held_by_accounts == result.minted
        assert services.ledger.rejected_writes == 0
    finally:
        await honest.stop()
        await coordinator.stop()
