"""Cloud nodes end to end: a real llama-cpp-python server as the upstream, registered through
the account API, served through the gateway with the official client; its token never at rest
in plain text, never in a log; a dead upstream parked by the breaker while consumers fail over."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.upstream import UPSTREAM_MODEL, LlamaServer, cloud_settings
from support.wallets import Wallet, bearer, sign_in

from coordinator.accounts.enrollment import node_earned
from coordinator.cloud.fleet import CLOUD_FLEET
from coordinator.probes.observation import JobObservation
from coordinator.routing import BreakerState, Outcome, RoutingConstants
from coordinator.store.models import Account
from protocol.ids import NodeId

MODEL = "gemma-3-270m"
PROMPT = [{"role": "user", "content": "Write one short sentence about the sea."}]
# llama-cpp-python's server ranks the whole 262k vocabulary in Python for every token's
# logprobs, which every job asks for: about a token a second here, under the default floor.
SLOW_UPSTREAM = RoutingConstants(ramp_start_fraction=1.0, floor_tok_s=0.0)


@asynccontextmanager
async def signed_in(
    coordinator: RunningCoordinator, wallet: Wallet | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Wallet]]:
    """An HTTP client signed in to the account API with a fresh (or the given) wallet."""
    wallet = wallet or Wallet.solders()
    async with httpx.AsyncClient(base_url=coordinator.base_url, timeout=120) as http:
        session = await sign_in(http, wallet)
        http.headers.update(bearer(session["token"]))
        yield http, wallet


def offer(server: LlamaServer, **changes: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "token": server.token, "model": MODEL,
            "upstream_model": UPSTREAM_MODEL, "concurrency": 2, **changes}


async def add_cloud_node(http: httpx.AsyncClient, server: LlamaServer, **changes: Any) -> str:
    response = await http.post("/v1/account/cloud-nodes", json=offer(server, **changes))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


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
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
    all_logs: pytest.LogCaptureFixture,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key),
        routing=SLOW_UPSTREAM,
    )
    token = upstream.token
    try:
        async with signed_in(coordinator) as (http, wallet):
            created = await http.post("/v1/account/cloud-nodes", json=offer(upstream))
            assert created.status_code == 201, created.text
            node_id = created.json()["id"]
            assert node_id.startswith("cloud-") and created.json()["online"] is True
            assert created.json()["token_last4"] == token[-4:]
            listed = await http.get("/v1/account/cloud-nodes")
            assert [n["id"] for n in listed.json()["data"]] == [node_id]
            for reply in (created, listed, await http.get(f"/v1/account/cloud-nodes/{node_id}")):
                assert token not in reply.text and token[:-4] not in reply.text

        services = coordinator.services
        assert services.hub.get(NodeId(node_id)) is not None
        assert NodeId(node_id) in services.router
        seen: list[JobObservation] = []
        services.observers.append(seen.append)
        client = await coordinator.client("consumer")

        whole = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=10, temperature=0,  # type: ignore[arg-type]
        )
        assert whole.headers["X-Koretex-Node"] == node_id
        completion = whole.parse()
        assert completion.choices[0].message.content
        assert completion.usage is not None and completion.usage.completion_tokens >= 8

        streamed = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=6, stream=True, logprobs=True,
            top_logprobs=2,  # type: ignore[arg-type]
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
        snapshot = services.router.snapshot(NodeId(node_id), now=services.clock.monotonic())
        assert snapshot.measured_tok_s is not None and snapshot.health_score > 0.5

        await coordinator.services.ledger.flush()
        async with coordinator.services.database.session() as db:
            earned = await node_earned(db, node_id)
            operator = await db.scalar(select(Account.balance).where(
                Account.wallet == wallet.address))
        assert earned > 0
        assert operator == coordinator.settings.economy.starter_credits + earned
    finally:
        await coordinator.stop()

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
    tmp_path: Path, database_url: str, doomed_upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key),
        routing=SLOW_UPSTREAM,
    )
    agent = AgentProcess.scripted(coordinator, tmp_path / "agent", "--slots", "1")
    try:
        async with signed_in(coordinator) as (http, _):
            node_id = NodeId(await add_cloud_node(http, doomed_upstream, concurrency=4))
        client = await coordinator.client("consumer")
        served = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=4,  # type: ignore[arg-type]
        )
        assert served.headers["X-Koretex-Node"] == node_id

        await agent.start()
        await doomed_upstream.kill()
        router, clock = coordinator.services.router, coordinator.services.clock

        async def ask() -> str:
            reply = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=PROMPT, max_tokens=3,  # type: ignore[arg-type]
            )
            assert reply.parse().choices[0].message.content
            return reply.headers["X-Koretex-Node"]

        # A wave wider than the live node: the overflow lands on the dead upstream, fails
        # there before its first token and is carried over to the live node instead.
        served_by = await asyncio.gather(*(ask() for _ in range(6)))
        assert set(served_by) == {agent.node_id}
        snapshot = router.snapshot(node_id, now=clock.monotonic())
        assert snapshot.breaker_state is BreakerState.PARKED and not snapshot.candidate
        # Parked: the next consumer goes straight to the live node.
        assert await ask() == agent.node_id
    finally:
        await agent.stop()
        await coordinator.stop()


async def test_streams_cut_by_a_dying_upstream_are_resumed_elsewhere(
    tmp_path: Path, database_url: str, doomed_upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key),
        routing=SLOW_UPSTREAM,
    )
    agent = AgentProcess.scripted(coordinator, tmp_path / "agent", "--slots", "1")
    try:
        async with signed_in(coordinator) as (http, _):
            node_id = await add_cloud_node(http, doomed_upstream)
        client = await coordinator.client("consumer")
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 500."}],
            max_tokens=1500, stream=True,  # type: ignore[arg-type]
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
    finally:
        await agent.stop()
        await coordinator.stop()


async def test_a_consumer_who_leaves_closes_the_upstream_request(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key),
        routing=SLOW_UPSTREAM,
    )
    services = coordinator.services
    try:
        async with signed_in(coordinator) as (http, _):
            node_id = NodeId(await add_cloud_node(http, upstream))
        client = await coordinator.client("consumer")
        relay = coordinator.runner.app[CLOUD_FLEET].relays[node_id]
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count from 1 to 500."}],
            max_tokens=1500, stream=True,  # type: ignore[arg-type]
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        assert relay.jobs_running == 1
        await stream.close()  # the consumer leaves mid-answer
        await wait_for(lambda: relay.jobs_running == 0, 30, "the upstream request to be closed")
        snapshot = services.router.snapshot(node_id, now=services.clock.monotonic())
        assert snapshot.in_flight == 0 and snapshot.breaker_state is BreakerState.CLOSED
        assert snapshot.health_score == 0.5  # leaving costs the node nothing: no outcome counted
    finally:
        await coordinator.stop()


async def test_a_frozen_upstream_times_out_and_counts_against_its_node(
    tmp_path: Path, database_url: str, doomed_upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=SLOW_UPSTREAM,
        cloud={**cloud_settings(master_key), "first_byte_timeout_s": 1.0},
    )
    # The live node holds its one slot a while, so the overflow surely meets the frozen one.
    agent = AgentProcess.scripted(coordinator, tmp_path / "agent", "--slots", "1", "--delay", "0.3")
    process = doomed_upstream.process
    assert process is not None
    try:
        async with signed_in(coordinator) as (http, _):
            node_id = NodeId(await add_cloud_node(http, doomed_upstream, concurrency=4))
        seen: list[JobObservation] = []
        coordinator.services.observers.append(seen.append)
        await agent.start()
        process.send_signal(signal.SIGSTOP)  # it accepts connections and never answers
        client = await coordinator.client("consumer")
        replies = await asyncio.gather(*(
            client.chat.completions.with_raw_response.create(
                model=MODEL, messages=PROMPT, max_tokens=3,  # type: ignore[arg-type]
            ) for _ in range(3)
        ))
        assert {reply.headers["X-Koretex-Node"] for reply in replies} == {agent.node_id}
        frozen = [o for o in seen if o.node_id == node_id]
        assert frozen and all(o.outcome is Outcome.FAILURE for o in frozen)
    finally:
        process.send_signal(signal.SIGCONT)
        await agent.stop()
        await coordinator.stop()
