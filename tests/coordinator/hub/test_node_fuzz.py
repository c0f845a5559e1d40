"""Hostile nodes: property-based fuzzing of the node websocket against the real coordinator.

Each example dials ``/v1/nodes/connect`` as a stranger's machine would and sends a drawn sequence
of frames: malformed JSON, unknown message types, binary and oversized frames, out-of-order
registrations, deltas and endings for jobs it does not own (including jobs live on the honest
node), and registrations claiming the honest node's id. Meanwhile a real agent keeps serving a
consumer through the official client. The offending connection must be closed with a code and a
reason; the consumer sees every reply whole and in order; no hostile node earns anything; the
ledger audits clean.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import nacl.signing
import openai
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.ledger_audit import audit

from coordinator.accounts.enrollment import node_earned
from coordinator.routing import RoutingConstants
from protocol.close_codes import CloseCode
from protocol.ids import ModelId, NodeId
from protocol.messages import (
    Challenge,
    Draining,
    Hardware,
    JobDone,
    JobFailed,
    ModelOffer,
    Register,
    TokenDelta,
    decode_coordinator_message,
    encode,
)
from protocol.session import AgentSession, Offer

MODEL = "smollm2-135m-instruct"
MAX_FRAME = 4096
LIVE_JOB = "<a job live on the honest node>"
OFFER = Offer(
    agent_version="fuzz", engine="scripted",
    models=(ModelOffer(model=ModelId(MODEL), context_length=4096),), slots=1,
    hardware=Hardware(system="Linux", machine="x86_64", chip="x", cores=1, memory_bytes=1),
)
POLICY_VIOLATION = 1008
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class Frame:
    kind: str  # what it is, which decides how the coordinator must answer it
    payload: str | bytes | None = None  # None: built at send time (live job ids, replays)
    job_id: str = ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
job_ids = st.sampled_from([LIVE_JOB]) | st.text(min_size=1, max_size=40)
hostile_frames = st.one_of(
    st.text(max_size=200).filter(lambda t: not t.strip().startswith("{")).map(
        lambda t: Frame("malformed", t)
    ),
    st.dictionaries(st.text(max_size=10), json_values, max_size=5).map(
        lambda d: Frame("unknown", json.dumps({**d, "type": "no-such-type"}))
    ),
    st.binary(min_size=1, max_size=64).map(lambda b: Frame("binary", b)),
    st.just(Frame("oversized", '{"type": "delta", "text": "' + "x" * MAX_FRAME + '"}')),
    job_ids.map(lambda j: Frame("delta", None, j)),
    job_ids.map(lambda j: Frame("done", None, j)),
    job_ids.map(lambda j: Frame("failed", None, j)),
    st.just(Frame("register-again")),
)
benign_frames = st.just(Frame("draining"))


@dataclass(frozen=True)
class Attack:
    identity: str  # "own": a valid registration; "claims": the honest node's id; "none"
    frames: tuple[Frame, ...]


attacks = st.builds(
    Attack,
    identity=st.sampled_from(["own", "claims", "none"]),
    frames=st.tuples(st.lists(benign_frames, max_size=2), hostile_frames).map(
        lambda parts: (*parts[0], parts[1])
    ) | st.lists(benign_frames, max_size=2).map(tuple),
)


def expected_close(attack: Attack) -> tuple[int, str] | None:
    """(close code, a word of the reason) the coordinator must answer with; None: stays open."""
    if attack.identity == "claims":
        return CloseCode.REFUSED, "bad signature"
    first = attack.frames[0] if attack.frames else None
    if attack.identity == "none":
        if first is None:
            return None
        if first.kind == "oversized":
            return MESSAGE_TOO_BIG, "max_frame_bytes"
        if first.kind == "binary":
            return CloseCode.REFUSED, "text frame"
        if first.kind in ("malformed", "unknown"):
            return CloseCode.REFUSED, "malformed"
        if first.kind == "register-again":  # a replay of an old registration: another nonce
            return CloseCode.REFUSED, "nonce"
        return CloseCode.REFUSED, "register first"
    hostile = next((f for f in attack.frames if f.kind != "draining"), None)
    if hostile is None:
        return None
    return {
        "malformed": (POLICY_VIOLATION, "malformed"),
        "unknown": (POLICY_VIOLATION, "malformed"),
        "binary": (UNSUPPORTED_DATA, "text frames only"),
        "oversized": (MESSAGE_TOO_BIG, "max_frame_bytes"),
        "delta": (POLICY_VIOLATION, "not this node's"),
        "done": (POLICY_VIOLATION, "not this node's"),
        "failed": (POLICY_VIOLATION, "not this node's"),
        "register-again": (POLICY_VIOLATION, "already registered"),
    }[hostile.kind]


@dataclass
class Arena:
    coordinator: RunningCoordinator
    honest: AgentProcess
    hostile_ids: list[str]
    consumer: openai.AsyncOpenAI
    consumer_failures: list[str]
    replies: list[int]


def frame_text(frame: Frame, arena: Arena, register: Register, identity: str) -> str | bytes:
    if frame.payload is not None:
        return frame.payload
    if frame.kind == "draining":
        return encode(Draining())
    if frame.kind == "register-again":
        if identity == "none":  # never registered here: a registration replayed from elsewhere
            return encode(register.model_copy(update={"nonce": "a-nonce-of-another-connection"}))
        return encode(register)
    job_id = frame.job_id
    if job_id == LIVE_JOB:
        live = arena.coordinator.services.hub.get(NodeId(arena.honest.node_id))
        running = sorted(live.session.owned_jobs) if live is not None else []
        job_id = running[0] if running else "job-not-running"
    if frame.kind == "delta":
        return encode(TokenDelta(job_id=job_id, text=" forged", tokens=1000))  # type: ignore[arg-type]
    if frame.kind == "done":
        return encode(JobDone(job_id=job_id, finish_reason="stop", prompt_tokens=5,  # type: ignore[arg-type]
                              completion_tokens=1000))
    return encode(JobFailed(job_id=job_id, code="engine_error", message="forged"))  # type: ignore[arg-type]


async def attack_once(arena: Arena, attack: Attack) -> None:
    coordinator = arena.coordinator
    key = nacl.signing.SigningKey.generate()
    agent_session = AgentSession(key, OFFER)
    arena.hostile_ids.append(agent_session.node_id)
    async with aiohttp.ClientSession() as http, http.ws_connect(
        f"{coordinator.base_url}/v1/nodes/connect", max_msg_size=0
    ) as ws:
        challenge = decode_coordinator_message((await ws.receive(timeout=10)).data)
        assert isinstance(challenge, Challenge)
        register = agent_session.answer(challenge, datetime.now(UTC))
        if attack.identity == "claims":
            register = register.model_copy(update={"node_id": arena.honest.node_id})
        if attack.identity != "none":
            await ws.send_str(encode(register))
        if attack.identity == "own":
            reply = await ws.receive(timeout=10)
            assert '"registered"' in reply.data, reply
        for frame in attack.frames if attack.identity != "claims" else ():
            if ws.closed:
                break
            text = frame_text(frame, arena, register, attack.identity)
            try:
                if isinstance(text, bytes):
                    await ws.send_bytes(text)
                else:
                    await ws.send_str(text)
            except ConnectionError:
                break
        expected = expected_close(attack)
        if expected is None:
            await ws.close()
            return
        while True:  # jobs routed to this node may arrive before the close: ignore them
            message = await ws.receive(timeout=15)
            if message.type is aiohttp.WSMsgType.TEXT:
                continue
            break
        code, word = expected
        assert message.type is aiohttp.WSMsgType.CLOSE, (attack, message)
        assert (message.data, word in (message.extra or "")) == (code, True), (attack, message)
    hub = coordinator.services.hub
    await wait_for(lambda: hub.get(NodeId(agent_session.node_id)) is None, 10, "hostile gone")
    assert hub.get(NodeId(arena.honest.node_id)) is not None, "the honest node was disturbed"


@pytest_asyncio.fixture
async def arena(tmp_path: Path, database_url: str) -> AsyncIterator[Arena]:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, max_frame_bytes=MAX_FRAME,
        routing=RoutingConstants(ramp_start_fraction=1.0),
    )
    honest = AgentProcess.scripted(coordinator, tmp_path / "honest", "--delay", "0.01",
                                   "--slots", "4")
    try:
        await honest.start()
        yield Arena(coordinator, honest, [], await coordinator.client("consumer"), [], [])
    finally:
        await honest.stop()
        await coordinator.stop()


async def serve_consumer(arena: Arena, stop: asyncio.Event) -> None:
    client = arena.consumer
    rng = random.Random(7)
    while not stop.is_set():
        n = rng.randint(3, 12)
        try:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=n,
                stream=True,
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        except openai.APIError as error:
            arena.consumer_failures.append(repr(error))
            continue
        if text != " ".join(f"w{i}" for i in range(n)):
            arena.consumer_failures.append(f"wrong reply {text!r}")
        arena.replies.append(n)


@settings(
    max_examples=6, deadline=None, derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # each example is a whole campaign: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_frames_close_only_the_offender(
    arena: Arena, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    # one hypothesis run drives many attacks against one coordinator while a consumer streams
    attack_list = data.draw(st.lists(attacks, min_size=25, max_size=25))
    stop = asyncio.Event()
    consumer = asyncio.create_task(serve_consumer(arena, stop))
    try:
        for attack in attack_list:
            try:
                await asyncio.wait_for(attack_once(arena, attack), 30)
            except TimeoutError:
                pytest.fail(f"no answer to {attack}")
        await wait_for(lambda: len(arena.replies) >= 5, 60, "the consumer to be served")
    finally:
        stop.set()
        await consumer
    assert arena.consumer_failures == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]

    services = arena.coordinator.services
    await services.ledger.flush()
    async with services.database.session() as session:
        for node_id in arena.hostile_ids:
            assert await node_earned(session, node_id) == 0, "paid for forged work"
        assert await node_earned(session, arena.honest.node_id) > 0
    price = services.catalogue.get(MODEL)
    assert price is not None
    result = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    assert result.unbalanced_transactions == 0 and result.balance_mismatches == 0
    assert result.negative_balances == 0 and result.charges_not_matching_tokens == 0
    assert result.open_holds == 0 and result.held_by_accounts == result.minted
