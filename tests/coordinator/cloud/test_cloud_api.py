"""The cloud-node API and its keeping: validation, ownership, the master key at startup and in
rotation, and the ``koretex cloud`` CLI, against a real llama-cpp-python upstream."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from solders.keypair import Keypair
from support.cloud_nodes import (
    CLOUD_NODES,
    MODEL,
    CloudNetwork,
    add_cloud_node,
    answer,
    offer,
    register_cloud_node,
    signed_in,
)
from support.cluster import REPO, RunningCoordinator
from support.upstream import UPSTREAM_MODEL, LlamaServer, cloud_settings, free_port
from support.wallets import Wallet, sign_in

from coordinator.app import create_app
from coordinator.cloud.addresses import is_public
from coordinator.cloud.fleet import CLOUD_FLEET, CloudNodesMisconfigured
from coordinator.cloud.sealing import new_master_key
from coordinator.settings import CoordinatorSettings
from protocol.ids import NodeId


def refused(response: httpx.Response, status: int, param: str | None = None) -> str:
    """The refusal's message, after checking its status (and the parameter it names)."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    return str(error["message"])


async def refused_offer(
    http: httpx.AsyncClient, server: LlamaServer, param: str, **changes: Any
) -> str:
    """Offer ``server`` with ``changes``: the 400's message, which must name ``param``."""
    return refused(await http.post(CLOUD_NODES, json=offer(server, **changes)), 400, param)


async def python_module(*argv: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m *argv`` from the repository, ``env`` over this environment: exit code, stdout,
    stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *argv, cwd=REPO, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def rotate(database_url: str, old: str, new: str | None) -> tuple[int, str, str]:
    env = {"KORETEX_DATABASE_URL": database_url, "KORETEX_CLOUD__MASTER_KEY": old}
    if new is not None:
        env["KORETEX_NEW_MASTER_KEY"] = new
    return await python_module("coordinator", "keys", "rotate-master", env=env)


async def koretex(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    return await python_module("agent", "cloud", *args, env=env)


async def refuses_to_start(settings: CoordinatorSettings) -> str:
    runner = web.AppRunner(create_app(settings))
    try:
        with pytest.raises(CloudNodesMisconfigured) as refusal:
            await runner.setup()
    finally:
        await runner.cleanup()
    return str(refusal.value)


async def test_bad_offers_are_refused_clearly_and_nothing_is_stored(
    cloud: CloudNetwork, upstream: LlamaServer,
) -> None:
    coordinator = await cloud.start()
    async with signed_in(coordinator) as http:
        anonymous = await http.post(
            CLOUD_NODES, json=offer(upstream), headers={"Authorization": ""}
        )
        refused(anonymous, 401)
        for url in ("ftp://host/v1", "not a url", "http://user:pw@127.0.0.1/v1",
                    "http://127.0.0.1:99999/v1", "https://host/v1?key=x"):
            await refused_offer(http, upstream, "base_url", base_url=url)
        await refused_offer(http, upstream, "model", model="gpt-9")
        await refused_offer(http, upstream, "concurrency", concurrency=0)
        await refused_offer(http, upstream, "concurrency", concurrency=200)
        await refused_offer(http, upstream, "token", token="")
        wrong = "sk-wrong-" + "x" * 30
        message = await refused_offer(http, upstream, "base_url", token=wrong)
        assert "HTTP 401" in message and "refused the token" in message
        assert wrong not in message
        closed = f"http://127.0.0.1:{free_port()}/v1"
        message = await refused_offer(http, upstream, "base_url", base_url=closed)
        assert "could not be reached" in message
        assert (await http.get(CLOUD_NODES)).json() == {"data": []}
    assert len(coordinator.services.hub) == 0


async def test_only_the_owner_sees_changes_or_removes_a_cloud_node(
    cloud: CloudNetwork, upstream: LlamaServer,
) -> None:
    coordinator = await cloud.start()
    services = coordinator.services
    async with signed_in(coordinator) as owner, signed_in(coordinator) as stranger:
        node_id = await add_cloud_node(owner, upstream)
        path = f"{CLOUD_NODES}/{node_id}"

        assert (await stranger.get(CLOUD_NODES)).json() == {"data": []}
        for method in ("GET", "PATCH", "DELETE"):
            body = {"concurrency": 1} if method == "PATCH" else None
            refused(await stranger.request(method, path, json=body), 404)
            refused(await owner.request(method, f"{CLOUD_NODES}/cloud-nope", json=body), 404)

        # A change lands while an answer streams: the answer finishes on the old settings.
        client = await coordinator.client("consumer")
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5,
            stream=True,
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
        assert coordinator.snapshot(node_id).slots == 3
        relay = coordinator.runner.app[CLOUD_FLEET].relays[node_id]
        assert relay.connection_limit == 3  # the pool follows the declared concurrency
        assert services.hub.get(node_id) is not None

        bad = await owner.patch(path, json={"token": "sk-wrong-token-here"})
        assert "HTTP 401" in refused(bad, 400)
        kept = (await owner.get(path)).json()
        assert kept["token_last4"] == upstream.token[-4:] and kept["concurrency"] == 3

        assert (await owner.delete(path)).status_code == 204
        assert services.hub.get(node_id) is None
        refused(await owner.get(path), 404)


async def test_without_a_master_key_cloud_nodes_are_disabled(
    coordinator: RunningCoordinator, upstream: LlamaServer,
) -> None:
    async with signed_in(coordinator) as http:
        response = await http.post(CLOUD_NODES, json=offer(upstream))
        assert refused(response, 503).startswith("cloud nodes are disabled")
        assert response.json()["error"]["code"] == "cloud_nodes_disabled"


async def test_private_upstreams_are_refused_unless_the_operator_allows_them(
    cloud: CloudNetwork, upstream: LlamaServer,
) -> None:
    coordinator = await cloud.start(cloud={"master_key": cloud.master_key})
    async with signed_in(coordinator) as http:
        port = upstream.base_url.split(":")[2].split("/")[0]
        for url in (upstream.base_url, f"http://localhost:{port}/v1", "http://10.1.2.3/v1",
                    "http://169.254.169.254/v1", f"http://[::1]:{port}/v1"):
            message = await refused_offer(http, upstream, "base_url", base_url=url)
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
            message = await refused_offer(http, upstream, "base_url", base_url=named)
            assert "resolves only to private" in message
        assert (await http.get(CLOUD_NODES)).json() == {"data": []}


async def test_the_master_key_guards_startup_and_rotation_reseals_every_token(
    cloud: CloudNetwork, database_url: str, upstream: LlamaServer, master_key: str,
) -> None:
    node_id = await register_cloud_node(await cloud.start(), upstream)
    await cloud.stop()

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
    restarted = await cloud.start("again", cloud=cloud_settings(rotated))
    assert restarted.services.hub.get(node_id) is not None
    client = await restarted.client("consumer")
    node, _ = await answer(client, [{"role": "user", "content": "Hi"}], 2)
    assert node == node_id  # the re-sealed token still opens


async def test_the_cli_adds_lists_and_removes_cloud_nodes_signed_in_with_a_keypair(
    cloud: CloudNetwork, tmp_path: Path, upstream: LlamaServer,
) -> None:
    coordinator = await cloud.start()
    keypair = Keypair()
    wallet_file = tmp_path / "wallet.json"
    wallet_file.write_text(json.dumps(list(bytes(keypair))))
    signed = ["--coordinator", coordinator.base_url, "--wallet", str(wallet_file)]
    env = {"KORETEX_UPSTREAM_TOKEN": upstream.token, "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "COLUMNS": "250"}
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
