"""The cloud-node API and its keeping: validation, ownership, the master key at startup and in
rotation, and the ``koretex cloud`` CLI, against a real llama-cpp-python upstream."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from solders.keypair import Keypair
from support.cluster import REPO, RunningCoordinator, start_coordinator
from support.upstream import UPSTREAM_MODEL, LlamaServer, cloud_settings, free_port
from support.wallets import Wallet, bearer, sign_in

from coordinator.app import create_app
from coordinator.cloud.addresses import is_public
from coordinator.cloud.fleet import CLOUD_FLEET, CloudNodesMisconfigured
from coordinator.cloud.sealing import new_master_key
from coordinator.settings import CoordinatorSettings
from protocol.ids import NodeId

MODEL = "gemma-3-270m"


@asynccontextmanager
async def signed_in(
    coordinator: RunningCoordinator, wallet: Wallet | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=coordinator.base_url, timeout=120) as http:
        session = await sign_in(http, wallet or Wallet.solders())
        http.headers.update(bearer(session["token"]))
        yield http


def offer(server: LlamaServer, **changes: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "token": server.token, "model": MODEL,
            "upstream_model": UPSTREAM_MODEL, "concurrency": 2, **changes}


def refused(response: httpx.Response, status: int, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    return str(error["message"])


async def test_bad_offers_are_refused_clearly_and_nothing_is_stored(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key)
    )
    try:
        async with signed_in(coordinator) as http:
            post = "/v1/account/cloud-nodes"
            anonymous = await http.post(post, json=offer(upstream), headers={"Authorization": ""})
            refused(anonymous, 401)
            for url in ("ftp://host/v1", "not a url", "http://user:pw@127.0.0.1/v1",
                        "http://127.0.0.1:99999/v1", "https://host/v1?key=x"):
                refused(await http.post(post, json=offer(upstream, base_url=url)), 400, "base_url")
            refused(await http.post(post, json=offer(upstream, model="gpt-9")), 400, "model")
            refused(await http.post(post, json=offer(upstream, concurrency=0)), 400, "concurrency")
            refused(await http.post(post, json=offer(upstream, concurrency=200)), 400,
                    "concurrency")
            refused(await http.post(post, json=offer(upstream, token="")), 400, "token")
            wrong = "sk-wrong-" + "x" * 30
            message = refused(await http.post(post, json=offer(upstream, token=wrong)), 400,
                              "base_url")
            assert "HTTP 401" in message and "refused the token" in message
            assert wrong not in message
            closed = f"http://127.0.0.1:{free_port()}/v1"
            message = refused(await http.post(post, json=offer(upstream, base_url=closed)), 400,
                              "base_url")
            assert "could not be reached" in message
            assert (await http.get(post)).json() == {"data": []}
        assert len(coordinator.services.hub) == 0
    finally:
        await coordinator.stop()


async def test_only_the_owner_sees_changes_or_removes_a_cloud_node(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key)
    )
    services = coordinator.services
    try:
        async with signed_in(coordinator) as owner, signed_in(coordinator) as stranger:
            created = await owner.post("/v1/account/cloud-nodes", json=offer(upstream))
            assert created.status_code == 201, created.text
            node_id = created.json()["id"]
            path = f"/v1/account/cloud-nodes/{node_id}"

            assert (await stranger.get("/v1/account/cloud-nodes")).json() == {"data": []}
            for method in ("GET", "PATCH", "DELETE"):
                body = {"concurrency": 1} if method == "PATCH" else None
                refused(await stranger.request(method, path, json=body), 404)
                refused(await owner.request(method, "/v1/account/cloud-nodes/cloud-nope",
                                            json=body), 404)

            # A change lands while an answer streams: the answer finishes on the old settings.
            client = await coordinator.client("consumer")
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5,
                stream=True,  # type: ignore[arg-type]
            )
            chunks = aiter(stream)
            await anext(chunks)
            changed = await owner.patch(path, json={"concurrency": 3})
            assert changed.status_code == 200 and changed.json()["concurrency"] == 3
            finish = None
            async for chunk in chunks:
                if chunk.choices:
                    finish = chunk.choices[0].finish_reason or finish
            assert finish in ("stop", "length")
            now = services.clock.monotonic()
            assert services.router.snapshot(NodeId(node_id), now=now).slots == 3
            relay = coordinator.runner.app[CLOUD_FLEET].relays[NodeId(node_id)]
            assert relay.connection_limit == 3  # the pool follows the declared concurrency
            assert services.hub.get(NodeId(node_id)) is not None

            bad = await owner.patch(path, json={"token": "sk-wrong-token-here"})
            assert "HTTP 401" in refused(bad, 400)
            kept = (await owner.get(path)).json()
            assert kept["token_last4"] == upstream.token[-4:] and kept["concurrency"] == 3

            assert (await owner.delete(path)).status_code == 204
            assert services.hub.get(NodeId(node_id)) is None
            refused(await owner.get(path), 404)
    finally:
        await coordinator.stop()


async def test_without_a_master_key_cloud_nodes_are_disabled(
    tmp_path: Path, database_url: str, upstream: LlamaServer,
) -> None:
    coordinator = await start_coordinator(tmp_path / "c", database_url=database_url)
    try:
        async with signed_in(coordinator) as http:
            response = await http.post("/v1/account/cloud-nodes", json=offer(upstream))
            assert refused(response, 503).startswith("cloud nodes are disabled")
            assert response.json()["error"]["code"] == "cloud_nodes_disabled"
    finally:
        await coordinator.stop()


async def test_private_upstreams_are_refused_unless_the_operator_allows_them(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud={"master_key": master_key}
    )
    try:
        async with signed_in(coordinator) as http:
            post = "/v1/account/cloud-nodes"
            port = upstream.base_url.split(":")[2].split("/")[0]
            for url in (upstream.base_url, f"http://localhost:{port}/v1", "http://10.1.2.3/v1",
                        "http://169.254.169.254/v1", f"http://[::1]:{port}/v1"):
                message = refused(await http.post(post, json=offer(upstream, base_url=url)),
                                  400, "base_url")
                assert "must name a public address" in message, url
            # A name that resolves to private addresses only (this machine's own name, where
            # it resolves so) is refused when the connection is made.
            name = socket.gethostname()
            try:
                resolved = {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
            except OSError:
                resolved = set()
            if resolved and not any(is_public(address) for address in resolved):
                named = f"http://{name}:{port}/v1"
                message = refused(await http.post(post, json=offer(upstream, base_url=named)),
                                  400, "base_url")
                assert "resolves only to private" in message
            assert (await http.get(post)).json() == {"data": []}
    finally:
        await coordinator.stop()


async def refuses_to_start(settings: CoordinatorSettings) -> str:
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(CloudNodesMisconfigured) as refusal:
            await runner.setup()
    finally:
        await runner.cleanup()
    return str(refusal.value)


async def rotate(database_url: str, old: str, new: str | None) -> tuple[int, str, str]:
    env = {**os.environ, "KORETEX_DATABASE_URL": database_url, "KORETEX_CLOUD__MASTER_KEY": old}
    if new is not None:
        env["KORETEX_NEW_MASTER_KEY"] = new
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coordinator", "keys", "rotate-master", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_master_key_guards_startup_and_rotation_reseals_every_token(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key)
    )
    try:
        async with signed_in(coordinator) as http:
            created = await http.post("/v1/account/cloud-nodes", json=offer(upstream))
            assert created.status_code == 201, created.text
            node_id = NodeId(created.json()["id"])
    finally:
        await coordinator.stop()

    base = {"database_url": database_url, "host": "127.0.0.1", "port": 0}
    message = await refuses_to_start(CoordinatorSettings(**base))
    assert "KORETEX_CLOUD__MASTER_KEY is not set" in message
    other = new_master_key()
    message = await refuses_to_start(CoordinatorSettings(**base, cloud={"master_key": other}))
    assert f"cloud node {node_id}" in message and "does not open" in message

    code, _, err = await rotate(database_url, other, new_master_key())  # not the current key
    assert code == 1 and "nothing was changed" in err
    code, printed, err = await rotate(database_url, master_key, None)
    assert code == 0 and "re-sealed 1 cloud-node token(s)" in err
    rotated = printed.strip()
    assert len(rotated) == 64 and upstream.token not in printed + err

    message = await refuses_to_start(CoordinatorSettings(**base, cloud=cloud_settings(master_key)))
    assert "does not open" in message
    restarted = await start_coordinator(
        tmp_path / "again", database_url=database_url, cloud=cloud_settings(rotated)
    )
    try:
        assert restarted.services.hub.get(node_id) is not None
        client = await restarted.client("consumer")
        reply = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,  # type: ignore[arg-type]
        )
        assert reply.headers["X-Koretex-Node"] == node_id  # the re-sealed token still opens
    finally:
        await restarted.stop()


async def koretex(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "cloud", *args, cwd=REPO, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_adds_lists_and_removes_cloud_nodes_signed_in_with_a_keypair(
    tmp_path: Path, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, cloud=cloud_settings(master_key)
    )
    keypair = Keypair()
    wallet_file = tmp_path / "wallet.json"
    wallet_file.write_text(json.dumps(list(bytes(keypair))))
    signed = ["--coordinator", coordinator.base_url, "--wallet", str(wallet_file)]
    env = {"KORETEX_UPSTREAM_TOKEN": upstream.token, "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "COLUMNS": "250"}
    try:
        code, _, err = await koretex("list", "--coordinator", coordinator.base_url, env=env)
        assert code == 1 and "sign in first" in err

        code, out, err = await koretex(
            "add", *signed, "--base-url", upstream.base_url, "--model", MODEL,
            "--upstream-model", UPSTREAM_MODEL, "--concurrency", "2", env=env,
        )
        assert code == 0, err
        node_id = out.strip()
        assert node_id.startswith("cloud-") and coordinator.services.hub.get(NodeId(node_id))

        code, out, err = await koretex(
            "add", *signed, "--base-url", upstream.base_url, "--model", MODEL,
            "--upstream-model", UPSTREAM_MODEL, env={**env, "KORETEX_UPSTREAM_TOKEN": "sk-bad"},
        )
        assert code == 1 and "HTTP 401" in err and "sk-bad" not in err

        code, out, err = await koretex("list", *signed, "--json", env=env)
        assert code == 0, err
        listed = json.loads(out)
        assert [n["id"] for n in listed] == [node_id]
        assert upstream.token not in out + err and listed[0]["token_last4"] == upstream.token[-4:]

        # The wallet's account owns it: the same wallet signed in over HTTP sees it too.
        async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
            wallet = Wallet(str(keypair.pubkey()), lambda m: str(keypair.sign_message(m)))
            session = (await sign_in(http, wallet))["token"]
        code, out, err = await koretex(
            "list", "--coordinator", coordinator.base_url, env={**env, "KORETEX_SESSION": session}
        )
        assert code == 0 and node_id in out and "…" + upstream.token[-4:] in out

        code, _, err = await koretex("remove", *signed, node_id, env=env)
        assert code == 0, err
        assert coordinator.services.hub.get(NodeId(node_id)) is None
        code, _, err = await koretex("remove", *signed, node_id, env=env)
        assert code == 1 and "no cloud node" in err
    finally:
        await coordinator.stop()
