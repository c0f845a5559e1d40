"""The real node daemon (``koretex node run``) through the life of a node: draining on SIGTERM,
reconnecting to a restarted coordinator, keeping its key without a keyring, and its status file."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from pathlib import Path

import base58
import nacl.signing
from support.cluster import (
    REPO,
    TIMEOUT_FACTOR,
    AgentProcess,
    RunningCoordinator,
    start_coordinator,
    wait_for,
)

from agent.status import NodeStatus, read_status

MODEL = "smollm2-135m-instruct"
STORY = [{"role": "user", "content": "Tell a long story about a dragon and a baker."}]


def status_of(agent: AgentProcess) -> NodeStatus | None:
    return read_status(agent.directory / "state" / "koretex" / "status.json")


async def test_sigterm_drains_the_job_in_flight_then_exits_cleanly(
    coordinator: RunningCoordinator, smollm2_path: Path, tmp_path: Path
) -> None:
    # Two slots: the draining node has room, so only draining keeps new work away from it.
    agent = AgentProcess.llama(coordinator, smollm2_path, tmp_path / "draining", slots=2)
    await agent.start()
    other: AgentProcess | None = None
    try:
        client = await coordinator.client()
        stream = await client.chat.completions.create(
            model=MODEL, messages=STORY, max_tokens=200, temperature=0, stream=True,  # type: ignore[arg-type]
        )
        chunks = aiter(stream)
        text = ""
        while text.count(" ") < 3:
            chunk = await anext(chunks)
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        agent.signal(signal.SIGTERM)
        hub = coordinator.services.hub
        await wait_for(lambda: (node := hub.get(agent.node_id)) is not None  # type: ignore[arg-type]
                       and node.draining, 10, "the coordinator to mark the node draining")
        await wait_for(lambda: (s := status_of(agent)) is not None and s.state == "draining", 10,
                       "the status file to say draining")

        # New work goes elsewhere while the draining node finishes its job.
        other = AgentProcess.scripted(coordinator, tmp_path / "other")
        await other.start()
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
        )
        assert raw.headers["x-koretex-node"] == other.node_id

        finish = None
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert finish in ("stop", "length")
        assert await agent.wait_exit(60) == 0
    finally:
        await agent.stop()
        if other is not None:
            await other.stop()
    final = status_of(agent)
    assert final is not None and final.state == "stopped"
    assert final.jobs_done == 1 and final.tokens_served > 3
    assert final.measured_tok_s is not None and final.measured_tok_s > 0


async def test_the_agent_reconnects_to_a_restarted_coordinator_by_itself(
    tmp_path: Path, database_url: str, smollm2_path: Path
) -> None:
    first = await start_coordinator(tmp_path / "coordinator", database_url=database_url)
    agent = AgentProcess.llama(first, smollm2_path, tmp_path / "agent")
    second: RunningCoordinator | None = None
    try:
        await agent.start()
        assert agent.process is not None
        pid = agent.process.pid
        await first.stop()
        await wait_for(lambda: (s := status_of(agent)) is not None and s.state == "waiting", 10,
                       "the agent to notice the coordinator left")
        second = await start_coordinator(
            tmp_path / "coordinator", database_url=database_url, port=first.port
        )
        agent.coordinator = second
        started = time.monotonic()
        backoff_cap_s = 2.0  # AgentProcess sets KORETEX_BACKOFF_MAX_S=2
        await agent.wait_registered(timeout=backoff_cap_s + 5)
        assert time.monotonic() - started <= (backoff_cap_s + 5) * TIMEOUT_FACTOR
        assert agent.process.poll() is None and agent.process.pid == pid  # never restarted
        client = await second.client()
        reply = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4,
        )
        assert reply.choices[0].message.content
        await wait_for(lambda: (s := status_of(agent)) is not None and s.state == "connected"
                       and s.jobs_done == 1, 10, "the status file to catch up")
    finally:
        await agent.stop()
        if second is not None:
            await second.stop()


async def test_without_a_working_keyring_the_key_goes_to_an_owner_only_file(
    coordinator: RunningCoordinator, smollm2_path: Path, tmp_path: Path
) -> None:
    agent = AgentProcess.llama(coordinator, smollm2_path, tmp_path / "agent")
    key_file = tmp_path / "agent" / "keys" / "node.key"
    agent.env = {
        "KORETEX_KEY_STORE": "auto",
        "KORETEX_KEY_FILE": str(key_file),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    await agent.start(wait=False)
    try:
        await wait_for(lambda: key_file.exists() and key_file.read_text().strip() != "", 60,
                       "the key file")
        signing_key = nacl.signing.SigningKey(base58.b58decode(key_file.read_text().strip()))
        agent.node_id = base58.b58encode(bytes(signing_key.verify_key)).decode()
        await agent.wait_registered()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert f"key in a private file: {key_file}" in agent.log_text().replace("\n", "")
        await wait_for(lambda: (s := status_of(agent)) is not None and s.state == "connected",
                       10, "the status file")
        current = status_of(agent)
        assert current is not None
        assert (current.key_store, current.key_location) == ("file", str(key_file))
        assert current.node_id == agent.node_id
    finally:
        await agent.stop()


async def test_a_keyring_only_agent_without_a_keyring_says_so_and_exits_78(
    tmp_path: Path, smollm2_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "node", "run", "--model", str(smollm2_path), "--key-store",
        "keyring", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path),
             "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 78
    assert b"no working OS keyring" in output


async def test_a_refused_node_exits_78_and_says_why(
    coordinator: RunningCoordinator, smollm2_path: Path, tmp_path: Path
) -> None:
    agent = AgentProcess.llama(coordinator, smollm2_path, tmp_path / "agent",
                               extra=["--enrollment-token", "kte-never-minted"])
    await agent.start(wait=False)
    try:
        assert await agent.wait_exit(60) == 78
    finally:
        await agent.stop()
    assert "unknown enrollment token" in agent.log_text()
    final = status_of(agent)
    assert final is not None and final.state == "refused"
    assert final.detail is not None and "unknown enrollment token" in final.detail
