"""One agent serves several models side by side, learns the catalogue from its coordinator, and
starts from its cached catalogue when no coordinator answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
from support.cluster import AgentProcess, start_coordinator

from agent.catalogue import learn
from protocol.catalogue import SEED


async def test_one_agent_serves_the_instruct_and_the_base_model_at_once(
    tmp_path: Path, gemma_path: Path, smollm2_path: Path
) -> None:
    coordinator = await start_coordinator(tmp_path / "coordinator")
    agent = AgentProcess.llama(
        coordinator, gemma_path, tmp_path / "agent", slots=2,
        extra=["--model", str(smollm2_path)],
    )
    try:
        await agent.start()
        node = coordinator.services.hub.get(agent.node_id)  # type: ignore[arg-type]
        assert node is not None
        assert set(node.models) == {"gemma-3-270m", "smollm2-135m-instruct"}
        client = await coordinator.client()
        listed = {m.id: m for m in (await client.models.list()).data}
        for model in ("gemma-3-270m", "smollm2-135m-instruct"):
            assert listed[model].model_extra is not None
            assert listed[model].model_extra["nodes"] == 1
            assert listed[model].model_extra["context_length"] == 2048  # what the node offers

        chat, text = await asyncio.gather(
            client.chat.completions.create(
                model="smollm2-135m-instruct", max_tokens=12, temperature=0,
                messages=[{"role": "user", "content": "Name the capital of France."}],
            ),
            client.completions.create(
                model="gemma-3-270m", prompt="The capital of France is", max_tokens=6,
                temperature=0,
            ),
        )
        assert "Paris" in (chat.choices[0].message.content or "")
        assert text.choices[0].text.strip()
        assert chat.model == "smollm2-135m-instruct" and text.model == "gemma-3-270m"
        with pytest.raises(openai.BadRequestError, match="no chat template"):
            await client.chat.completions.create(
                model="gemma-3-270m", max_tokens=4,
                messages=[{"role": "user", "content": "Hello"}],
            )
    finally:
        await agent.stop()
        await coordinator.stop()


async def test_the_catalogue_is_learned_cached_and_used_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert learn(["http://127.0.0.1:9"], timeout_s=2).source == "seed"
    coordinator = await start_coordinator(tmp_path / "coordinator")
    try:
        learned = await asyncio.to_thread(learn, [coordinator.base_url])
    finally:
        await coordinator.stop()
    assert learned.source == coordinator.base_url
    assert {m.id for m in learned.models} == {m.id for m in SEED}
    assert learned.prices()["smollm2-135m-instruct"] == (10, 20)
    offline = learn(["http://127.0.0.1:9"], timeout_s=2)
    assert offline.source == "cache" and offline.models == learned.models
