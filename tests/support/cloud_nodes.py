"""Cloud nodes as their operators and consumers meet them: a signed-in account client, an offer
of an upstream, and coordinators holding a master key with scripted nodes beside them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from protocol.ids import NodeId
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator
from support.upstream import UPSTREAM_MODEL, LlamaServer, cloud_settings
from support.wallets import Wallet, bearer, sign_in

MODEL = "smollm2-135m-instruct"
CLOUD_NODES = "/v1/account/cloud-nodes"


@asynccontextmanager
async def signed_in(
    coordinator: RunningCoordinator, wallet: Wallet | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client signed in to the account API with a fresh (or the given) wallet."""
    async with httpx.AsyncClient(base_url=coordinator.base_url, timeout=120) as http:
        session = await sign_in(http, wallet or Wallet.solders())
        http.headers.update(bearer(session["token"]))
        yield http


def offer(server: LlamaServer, **changes: Any) -> dict[str, Any]:
    """The body registering ``server`` as a cloud node for MODEL, with ``changes`` applied."""
    return {"base_url": server.base_url, "token": server.token, "model": MODEL,
            "upstream_model": UPSTREAM_MODEL, "concurrency": 2, **changes}


async def add_cloud_node(http: httpx.AsyncClient, server: LlamaServer, **changes: Any) -> NodeId:
    """Register ``server`` through the account API; the new node's id."""
    response = await http.post(CLOUD_NODES, json=offer(server, **changes))
    assert response.status_code == 201, response.text
    return NodeId(response.json()["id"])


async def register_cloud_node(
    coordinator: RunningCoordinator, server: LlamaServer, **changes: Any
) -> NodeId:
    """Register ``server`` as a cloud node of a freshly signed-in operator; the node's id."""
    async with signed_in(coordinator) as http:
        return await add_cloud_node(http, server, **changes)


async def answer(
    client: openai.AsyncOpenAI, messages: Iterable[ChatCompletionMessageParam], max_tokens: int,
    **params: Any,
) -> tuple[str, ChatCompletion]:
    """A whole answer from the gateway and the node that gave it (its X-Koretex-Node header)."""
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=max_tokens, **params
    )
    return raw.headers["X-Koretex-Node"], raw.parse()


@dataclass
class CloudNetwork:
    """Coordinators holding one master key, and scripted nodes beside their cloud nodes; all
    stopped at the end of the test, or earlier by ``stop`` to look at what they left behind."""

    directory: Path
    database_url: str
    master_key: str
    coordinators: list[RunningCoordinator] = field(default_factory=list)
    agents: list[AgentProcess] = field(default_factory=list)

    async def start(self, name: str = "c", **overrides: Any) -> RunningCoordinator:
        """A coordinator on the shared database, cloud nodes on (unless ``cloud`` says else)."""
        values: dict[str, Any] = {"cloud": cloud_settings(self.master_key), **overrides}
        running = await start_coordinator(
            self.directory / name, database_url=self.database_url, **values
        )
        self.coordinators.append(running)
        return running

    def scripted_node(self, coordinator: RunningCoordinator, *args: str) -> AgentProcess:
        """A scripted node for ``coordinator``, not started yet; stopped with the network."""
        agent = AgentProcess.scripted(coordinator, self.directory / "agent", *args)
        self.agents.append(agent)
        return agent

    async def stop(self) -> None:
        agents, self.agents = self.agents, []
        await asyncio.gather(*(agent.stop() for agent in agents))
        coordinators, self.coordinators = self.coordinators, []
        for running in coordinators:
            await running.stop()

