"""Cloud nodes end to end: a real llama-cpp-python server as the upstream, registered through
the account API, served through the gateway with the official client; its token never at rest
in plain text, never in a log; a dead upstream parked by the breaker while consumers fail over."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select
from sqlalchemy.engine import make_url
from support.cloud_nodes import (
    CLOUD_NODES,
    MODEL,
    CloudNetwork,
    answer,
    offer,
    register_cloud_node,
    signed_in,
)
from support.cluster import RunningCoordinator, wait_for
from support.upstream import LlamaServer, cloud_settings
from support.wallets import Wallet

from coordinator.accounts.enrollment import node_earned
from coordinator.cloud.fleet import CLOUD_FLEET
from coordinator.hub.observation import JobObservation
from coordinator.routing import BreakerState, Outcome, RoutingConstants
from coordinator.store.models import Account
from protocol.ids import NodeId

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one short sentence about the sea."}
]
LONG_PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Count from 1 to 500."}
]
# llama-cpp-python's server ranks the whole 262k vocabulary in Python for every token's
# logprobs, which every job asks for: about a token a second here, under the default floor.
SLOW_UPSTREAM = RoutingConstants(ramp_start_fraction=1.0, floor_tok_s=0.0)


async def start_for_slow_upstreams(
    cloud: CloudNetwork, **cloud_changes: object
) -> RunningCoordinator:
    """A coordinator that admits an upstream as slow as this machine's llama-cpp-python."""
    return await cloud.start(
        routing=SLOW_UPSTREAM, cloud={**cloud_settings(cloud.master_key), **cloud_changes}
    )


def database_bytes(database_url: str, directory: Path) -> bytes:
    """Everything the database holds at rest: the SQLite files, or a PostgreSQL dump."""
    if database_url.startswith("sqlite"):
        return b"".join(path.read_bytes() for path in sorted(directory.rglob("coordinator.db*")))
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )
    dump = subprocess.run(["pg_dump", "--no-owner", dsn], capture_output=True, check=True)
    return dump.stdout


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_a_cloud_node_serves_through_the_gateway_and_its_token_never_rests_in_plain_text(
    cloud: CloudNetwork, tmp_path: Path, database_url: str, upstream: LlamaServer,
    master_key: str, all_logs: pytest.LogCaptureFixture,
) -> None:
    coordinator = await start_for_slow_upstreams(cloud)
    token = upstream.token
    wallet = Wallet.solders()
    async with signed_in(coordinator, wallet) as http:
        created = await http.post(CLOUD_NODES, json=offer(upstream))
        assert created.status_code == 201, created.text
        node_id = created.json()["id"]
        assert node_id.startswith("cloud-") and created.json()["online"] is True
        assert created.json()["token_last4"] == token[-4:]
        listed = await http.get(CLOUD_NODES)
        assert [n["id"] for n in listed.json()["data"]] == [node_id]
        for reply in (created, listed, await http.get(f"{CLOUD_NODES}/{node_id}")):
            assert token not in reply.text and token[:-4] not in reply.text

    services = coordinator.services
    assert services.hub.get(NodeId(node_id)) is not None
    assert NodeId(node_id) in services.router
    seen: list[JobObservation] = []
    services.observers.append(seen.append)
    client = await coordinator.client("consumer")

    node, completion = await answer(client, PROMPT, 10, temperature=0)
    assert node == node_id
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens >= 8

    streamed = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=6, stream=True, logprobs=True, top_logprobs=2,
    )
    assert streamed.headers["X-Koretex-Node"] == node_id
    pieces: list[str] = []
    alternatives: list[int] = []
    async for chunk in streamed.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            logprobs = chunk.choices[0].logprobs
            assert logprobs is not None and logprobs.content
            alternatives += [len(t.top_logprobs) for t in logprobs.content]
    assert len(pieces) > 1 and "".join(pieces).strip()  # relayed token by token
    assert alternatives and set(alternatives) == {2}  # the job asked for more: stripped

    # Observers (authenticity checks, points) and the router see it as any node.
    assert len(seen) == 2 and {o.node_id for o in seen} == {node_id}
    assert all(o.outcome is Outcome.SUCCESS and o.tokens > 0 for o in seen)
    evidence = [lp for o in seen for lp in o.logprobs]
    assert evidence and all(lp.token_id is None for lp in evidence)
    assert {len(lp.top) for lp in evidence} == {coordinator.settings.job_top_logprobs}
    snapshot = coordinator.snapshot(node_id)
    assert snapshot.measured_tok_s is not None and snapshot.health_score > 0.5

    await services.ledger.flush()
    async with services.database.session() as db:
        earned = await node_earned(db, node_id)
        operator = await db.scalar(select(Account.balance).where(
            Account.wallet == wallet.address))
    assert earned > 0
    assert operator == coordinator.settings.economy.starter_credits + earned
    await cloud.stop()

    at_rest = database_bytes(database_url, tmp_path)
    assert b"cloud_nodes" in at_rest and node_id.encode() in at_rest  # the scan sees the row
    assert token.encode() not in at_rest and token[:-4].encode() not in at_rest
    assert master_key.encode() not in at_rest
    logged = all_logs.text + "".join(repr(r.args) for r in all_logs.records)
    assert f"cloud node {node_id} online" in logged  # the capture saw the whole test
    assert token not in logged and token[:-4] not in logged and master_key not in logged


@pytest.fixture
async def doomed_upstream(
    gemma_path: Path, upstream_token: str, tmp_path: Path
) -> AsyncIterator[LlamaServer]:
    server = LlamaServer(gemma_path, upstream_token, tmp_path / "doomed")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_dead_upstream_is_parked_and_its_consumers_fail_over(
    doomed_upstream: LlamaServer, cloud: CloudNetwork,  # the upstream outlives the coordinator
) -> None:
    coordinator = await start_for_slow_upstreams(cloud)
    agent = cloud.scripted_node(coordinator, "--slots", "1")
    node_id = await register_cloud_node(coordinator, doomed_upstream, concurrency=4)
    client = await coordinator.client("consumer")
    served_by, _ = await answer(client, PROMPT, 4)
    assert served_by == node_id

    await agent.start()
    await doomed_upstream.kill()

    async def ask() -> str:
        node, completion = await answer(client, PROMPT, 3)
        assert completion.choices[0].message.content
        return node

    # A wave wider than the live node: the overflow lands on the dead upstream, fails
    # there before its first token and is carried over to the live node instead.
    assert set(await asyncio.gather(*(ask() for _ in range(6)))) == {agent.node_id}
    snapshot = coordinator.snapshot(node_id)
    assert snapshot.breaker_state is BreakerState.PARKED and not snapshot.candidate
    # Parked: the next consumer goes straight to the live node.
    assert await ask() == agent.node_id


async def test_streams_cut_by_a_dying_upstream_are_resumed_elsewhere(
    doomed_upstream: LlamaServer, cloud: CloudNetwork,  # the upstream outlives the coordinator
) -> None:
    coordinator = await start_for_slow_upstreams(cloud)
    agent = cloud.scripted_node(coordinator, "--slots", "1")
    node_id = await register_cloud_node(coordinator, doomed_upstream)
    client = await coordinator.client("consumer")
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=LONG_PROMPT, max_tokens=1500, stream=True,
    )
    assert raw.headers["X-Koretex-Node"] == node_id
    stream = raw.parse()
    pieces: list[str] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if len(pieces) == 3:
            break
    await agent.start()
    await doomed_upstream.kill()
    finish = None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert finish in ("stop", "length")
    assert any(piece.startswith(" w") for piece in pieces[3:]), pieces  # the scripted words


async def test_a_consumer_who_leaves_closes_the_upstream_request(
    cloud: CloudNetwork, upstream: LlamaServer,
) -> None:
    coordinator = await start_for_slow_upstreams(cloud)
    node_id = await register_cloud_node(coordinator, upstream)
    client = await coordinator.client("consumer")
    relay = coordinator.runner.app[CLOUD_FLEET].relays[node_id]
    stream = await client.chat.completions.create(
        model=MODEL, messages=LONG_PROMPT, max_tokens=1500, stream=True,
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    assert relay.jobs_running == 1
    await stream.close()  # the consumer leaves mid-answer
    await wait_for(lambda: relay.jobs_running == 0, 30, "the upstream request to be closed")
    snapshot = coordinator.snapshot(node_id)
    assert snapshot.in_flight == 0 and snapshot.breaker_state is BreakerState.CLOSED
    assert snapshot.health_score == 0.5  # leaving costs the node nothing: no outcome counted


async def test_a_frozen_upstream_times_out_and_counts_against_its_node(
    doomed_upstream: LlamaServer, cloud: CloudNetwork,  # the upstream outlives the coordinator
) -> None:
    coordinator = await start_for_slow_upstreams(cloud, first_byte_timeout_s=1.0)
    # The live node holds its one slot a while, so the overflow surely meets the frozen one.
    agent = cloud.scripted_node(coordinator, "--slots", "1", "--delay", "0.3")
    process = doomed_upstream.process
    assert process is not None
    try:
        node_id = await register_cloud_node(coordinator, doomed_upstream, concurrency=4)
        seen: list[JobObservation] = []
        coordinator.services.observers.append(seen.append)
        await agent.start()
        process.send_signal(signal.SIGSTOP)  # it accepts connections and never answers
        client = await coordinator.client("consumer")
        replies = await asyncio.gather(*(answer(client, PROMPT, 3) for _ in range(3)))
        assert {node for node, _ in replies} == {agent.node_id}
        frozen = [o for o in seen if o.node_id == node_id]
        assert frozen and all(o.outcome is Outcome.FAILURE for o in frozen)
    finally:
        process.send_signal(signal.SIGCONT)
