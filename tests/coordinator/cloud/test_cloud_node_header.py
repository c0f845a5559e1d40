"""A cloud node's answers name it in ``X-Koretex-Node`` like any node's, streamed or whole, and
an empty one (a stop string its upstream meets at the first token) names and pays it too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionMessageParam
from support.cloud_nodes import CloudNetwork, register_cloud_node
from support.upstream import LlamaServer, cloud_settings

from coordinator.accounts.enrollment import node_earned
from coordinator.hub.observation import JobObservation
from coordinator.routing import Outcome, RoutingConstants

PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one short sentence about the sea."}
]
SLOW_UPSTREAM = RoutingConstants(ramp_start_fraction=1.0, floor_tok_s=0.0)
MODEL = "smollm2-135m-instruct"  # a chat model


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chat_upstream(
    smollm2_path: Path, upstream_token: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LlamaServer]:
    server = LlamaServer(smollm2_path, upstream_token, tmp_path_factory.mktemp("chat-upstream"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_cloud_answers_of_any_length_name_their_node(
    cloud: CloudNetwork, chat_upstream: LlamaServer
) -> None:
    coordinator = await cloud.start(routing=SLOW_UPSTREAM, cloud=cloud_settings(cloud.master_key))
    node_id = await register_cloud_node(coordinator, chat_upstream, model=MODEL)
    services = coordinator.services
    client = await coordinator.client("consumer")

    whole = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=PROMPT, max_tokens=3, temperature=0
    )
    assert whole.headers["X-Koretex-Node"] == node_id
    text = whole.parse().choices[0].message.content or ""
    assert text
    stop = text[:1]
    seen: list[JobObservation] = []
    services.observers.append(seen.append)

    for stream in (False, True):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=PROMPT, max_tokens=3, temperature=0, stop=[stop],
            stream=stream,
        )
        assert raw.headers["X-Koretex-Node"] == node_id, f"stream={stream}"
        if stream:
            chunks = [chunk async for chunk in raw.parse()]  # type: ignore[union-attr]
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            content = raw.parse().choices[0].message.content or ""  # type: ignore[union-attr]
        assert content == ""

    # Both ended before any text: observed as successes like any other answer.
    assert [(o.node_id, o.outcome, o.text) for o in seen] == [(node_id, Outcome.SUCCESS, "")] * 2
    await services.ledger.flush()
    async with services.database.session() as db:
        assert await node_earned(db, node_id) > 0
