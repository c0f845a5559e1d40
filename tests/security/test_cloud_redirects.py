"""A cloud upstream that answers with a redirect, to aim the coordinator at another address (its
own network, a metadata endpoint): the redirect is never followed, the upstream is refused or
faulted, and nothing but the checked host is ever connected to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from support.cloud_nodes import CLOUD_NODES, MODEL, signed_in
from support.cluster import RunningCoordinator, start_coordinator
from support.upstream import UPSTREAM_MODEL, cloud_settings

from coordinator.cloud.addresses import PrivateAddressRefused, upstream_connector
from coordinator.cloud.sealing import new_master_key

PROMPT = [{"role": "user", "content": "Name three colours."}]
TOKEN = "sk-upstream-redirecting"


@dataclass
class Server:
    """A real HTTP server on loopback that records every request it is sent."""

    app: web.Application
    hits: list[str] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> Server:
        @web.middleware
        async def record(request: web.Request, handler: object) -> web.StreamResponse:
            self.hits.append(f"{request.method} {request.path}")
            return await handler(request)  # type: ignore[operator,no-any-return]

        self.app.middlewares.append(record)
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def redirecting_upstream(target: str, status: int, *, answer_the_check: bool) -> web.Application:
    """An upstream that sends chat requests to ``target`` (after answering the one-token check
    honestly, if ``answer_the_check``: it turns once it is accepted)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if answer_the_check and not body.get("stream"):
            return web.json_response({"choices": [
                {"index": 0, "message": {"role": "assistant", "content": "OK"},
                 "finish_reason": "length"}
            ]})
        raise _redirect(status, f"{target}/v1/chat/completions")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def _redirect(status: int, location: str) -> web.HTTPException:
    kinds: dict[int, type[web.HTTPException]] = {
        301: web.HTTPMovedPermanently, 302: web.HTTPFound, 303: web.HTTPSeeOther,
        307: web.HTTPTemporaryRedirect, 308: web.HTTPPermanentRedirect,
    }
    return kinds[status](location)  # type: ignore[call-arg]


def target_app() -> web.Application:
    """Where the redirects point: anything reaching it is the attack succeeding."""

    async def anything(request: web.Request) -> web.Response:
        return web.json_response({"secret": "instance credentials"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


@pytest_asyncio.fixture
async def target() -> AsyncIterator[Server]:
    server = await Server(target_app()).start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def coordinator_with_cloud(
    tmp_path: Path, database_url: str
) -> AsyncIterator[RunningCoordinator]:
    running = await start_coordinator(tmp_path, database_url=database_url,
                                      cloud=cloud_settings(new_master_key()))
    try:
        yield running
    finally:
        await running.stop()


def offer(base_url: str, model: str = MODEL) -> dict[str, object]:
    return {"base_url": f"{base_url}/v1", "token": TOKEN, "model": model,
            "upstream_model": UPSTREAM_MODEL, "concurrency": 1}


def chat_model(running: RunningCoordinator) -> str:
    """A catalogue model chat requests may name (one whose weights carry a chat template)."""
    for priced in running.services.catalogue:
        if getattr(priced.model, "chat_template", "unknown: every model chats"):
            return str(priced.id)
    raise AssertionError("no chat model in the catalogue")


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_an_upstream_redirecting_its_check_is_refused(
    coordinator_with_cloud: RunningCoordinator, target: Server, status: int
) -> None:
    turning = redirecting_upstream(target.url, status, answer_the_check=False)
    upstream = await Server(turning).start()
    try:
        async with signed_in(coordinator_with_cloud) as http:
            refused = await http.post(CLOUD_NODES, json=offer(upstream.url))
            assert refused.status_code == 400, refused.text
            assert f"answered HTTP {status}" in refused.json()["error"]["message"]
            assert (await http.get(CLOUD_NODES)).json()["data"] == []
        assert upstream.hits == ["POST /v1/chat/completions"]
        assert target.hits == []  # the redirect was never followed
    finally:
        await upstream.stop()


async def test_an_upstream_that_turns_to_redirecting_is_faulted_and_not_followed(
    coordinator_with_cloud: RunningCoordinator, target: Server
) -> None:
    upstream = await Server(redirecting_upstream(target.url, 307, answer_the_check=True)).start()
    try:
        async with signed_in(coordinator_with_cloud) as http:
            model = chat_model(coordinator_with_cloud)
            created = await http.post(CLOUD_NODES, json=offer(upstream.url, model))
            assert created.status_code == 201, created.text
            node_id = created.json()["id"]
        client = await coordinator_with_cloud.client("consumer")
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(
                model=model, messages=PROMPT, max_tokens=4  # type: ignore[arg-type]
            )
        assert target.hits == [], failed.value.message
        assert upstream.hits.count("POST /v1/chat/completions") >= 2, failed.value.message
        # A redirect is the upstream's fault, counted against the node (neutral is 0.5).
        assert coordinator_with_cloud.snapshot(node_id).health_score < 0.5
    finally:
        await upstream.stop()


async def test_every_connection_is_checked_even_to_an_address_literal(target: Server) -> None:
    # aiohttp never asks a resolver about an IP literal: the socket factory refuses it.
    for url in (f"{target.url}/v1/chat/completions",
                target.url.replace("127.0.0.1", "localhost") + "/v1/chat/completions",
                target.url.replace("127.0.0.1", "[::ffff:127.0.0.1]") + "/x"):
        async with aiohttp.ClientSession(connector=upstream_connector(1, False)) as http:
            with pytest.raises(aiohttp.ClientConnectorError) as refused:
                await http.post(url, json={}, allow_redirects=False)
        assert isinstance(refused.value.os_error, PrivateAddressRefused), url
    assert target.hits == []
