"""The catalogue is data: a new GGUF becomes a served model with ``koretex-coordinator models add``
and one agent start, no code change; prices change and models leave the same way.

Real parts throughout: the coordinator's CLI as a subprocess on the coordinator's own SQLite
database, the coordinator serving, a real llama.cpp agent that learns the catalogue from it, and
the official openai client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import openai
import pytest
from support.cluster import REPO, AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.substitutes import requantize

NEW_MODEL = "gemma-3-270m-q4-0"


async def models_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread: the coordinator it talks to shares this test's event loop."""
    return await asyncio.to_thread(subprocess.run,
        [sys.executable, "-m", "coordinator", "models", *args], cwd=REPO, text=True,
        capture_output=True, timeout=600,
        env={**os.environ, "KORETEX_DATABASE_URL": database_url},
    )


async def published(coordinator: RunningCoordinator) -> dict[str, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(
        f"{coordinator.base_url}/v1/network/catalogue"
    ) as response:
        assert response.status == 200
        listing = await response.json()
    return {entry["id"]: entry for entry in listing["data"]}


@pytest.fixture
def requantized(gemma_path: Path, tmp_path: Path) -> Path:
    return requantize(gemma_path, tmp_path / "gemma-3-270m-q4_0.gguf")


async def test_a_new_gguf_is_served_after_models_add_and_leaves_with_models_remove(
    tmp_path: Path, requantized: Path
) -> None:
    coordinator = await start_coordinator(tmp_path / "coordinator", catalogue_refresh_s=0.3)
    database_url = coordinator.services.settings.database_url
    agent: AgentProcess | None = None
    try:
        seeded = await published(coordinator)
        assert {"gemma-3-270m", "smollm2-135m-instruct"} <= seeded.keys()
        assert seeded["smollm2-135m-instruct"]["chat_template"] is True
        assert seeded["gemma-3-270m"]["context_length"] == 32768  # the weights' own

        added = await models_cli(
            database_url, "add", str(requantized), "--id", NEW_MODEL,
            "--price-in", "5", "--price-out", "9", "--threads", "2",
        )
        assert added.returncode == 0, added.stderr
        listed = json.loads((await models_cli(database_url, "list", "--json")).stdout)
        entry = next(m for m in listed if m["id"] == NEW_MODEL)
        assert entry["weights"][0]["quantization"] == "Q4_0"
        assert entry["architecture"] == "gemma3" and entry["chat_template"] is False
        assert entry["fingerprinted"] is True and entry["context_length"] == 32768
        again = await models_cli(database_url, "add", str(requantized), "--id", NEW_MODEL,
                           "--price-in", "5", "--price-out", "9", "--no-fingerprint")
        assert again.returncode == 1 and "already in the catalogue" in again.stderr

        # The running coordinator picks it up; an agent learns it and names its weights by hash.
        await wait_for(lambda: NEW_MODEL in coordinator.services.catalogue.fingerprints, 10,
                       "the coordinator to reload the catalogue")
        assert (await published(coordinator))[NEW_MODEL]["price_output_per_1m"] == 9
        agent = AgentProcess.llama(coordinator, requantized, tmp_path / "agent")
        await agent.start()
        assert f"serving {NEW_MODEL}" in agent.log_text()
        client = await coordinator.client()
        answer = await client.completions.create(
            model=NEW_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
        )
        assert answer.choices[0].text.strip() and answer.usage is not None
        assert answer.usage.completion_tokens > 0
        with pytest.raises(openai.BadRequestError, match="chat template"):
            await client.chat.completions.create(
                model=NEW_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
            )

        repriced = await models_cli(database_url, "set-price", NEW_MODEL, "--price-in", "7",
                              "--price-out", "11")
        assert repriced.returncode == 0, repriced.stderr

        async def price_moved() -> bool:
            return (await published(coordinator))[NEW_MODEL]["price_input_per_1m"] == 7

        await wait_for_async(price_moved, "the new price to be published")

        refused = await models_cli(database_url, "remove", NEW_MODEL,
                             "--coordinator", coordinator.base_url)
        assert refused.returncode == 1 and "1 node(s) serve" in refused.stderr
        forced = await models_cli(database_url, "remove", NEW_MODEL, "--force")
        assert forced.returncode == 0, forced.stderr

        async def gone() -> bool:
            return NEW_MODEL not in await published(coordinator)

        await wait_for_async(gone, "the model to leave the catalogue")
        with pytest.raises(openai.NotFoundError):
            await client.completions.create(model=NEW_MODEL, prompt="Hi", max_tokens=2)
    finally:
        if agent is not None:
            await agent.stop()
        await coordinator.stop()


async def wait_for_async(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_models_add_names_what_is_wrong_with_its_source(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}"
    missing = await models_cli(database_url, "add", str(tmp_path / "nothing.gguf"), "--id", "x",
                         "--price-in", "1", "--price-out", "1")
    assert missing.returncode == 1 and "neither a file" in missing.stderr
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("not weights")
    broken = await models_cli(database_url, "add", str(not_gguf), "--id", "x",
                        "--price-in", "1", "--price-out", "1")
    assert broken.returncode == 1 and "not a GGUF file" in broken.stderr
    unknown = await models_cli(database_url, "set-price", "no-such-model", "--price-in", "1",
                         "--price-out", "1")
    assert unknown.returncode == 1 and "not in the catalogue" in unknown.stderr
