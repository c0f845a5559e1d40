"""``koretex models pull`` and ``list`` against a coordinator's catalogue and a local stand-in for
the Hugging Face hub (``HF_ENDPOINT``): the real huggingface_hub client, never the internet.

An operator adds a model from a hub reference (its source is recorded); an agent's operator lists
the catalogue, pulls the weights by id (sha256 verified), and a pull whose bytes do not match the
catalogue's hash is deleted and fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio
from support.cluster import REPO, RunningCoordinator, start_coordinator, wait_for
from support.hf_server import HubFiles, start_hub

from coordinator.catalogue import Price
from coordinator.store.catalogue import add_model
from protocol.catalogue import CatalogueModel, WeightsFile
from protocol.ids import ModelId

REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest_asyncio.fixture
async def hub(smollm2_path: Path) -> AsyncIterator[tuple[HubFiles, str]]:
    files = HubFiles()
    files.add(REPO_ID, FILENAME, smollm2_path)
    runner, endpoint = await start_hub(files)
    try:
        yield files, endpoint
    finally:
        await runner.cleanup()


async def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", *args], cwd=REPO, text=True,
        capture_output=True, timeout=300, env={**os.environ, **env},
    )


async def test_models_are_added_from_the_hub_listed_and_pulled_by_id(
    tmp_path: Path, hub: tuple[HubFiles, str], smollm2_path: Path
) -> None:
    files, endpoint = hub
    coordinator: RunningCoordinator = await start_coordinator(
        tmp_path / "coordinator", catalogue_refresh_s=0.3
    )
    operator_env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-operator"),
                    "KORETEX_DATABASE_URL": coordinator.services.settings.database_url}
    node_env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-node"),
                "XDG_CACHE_HOME": str(tmp_path / "node-cache")}
    try:
        added = await run_cli(
            operator_env, "coordinator", "models", "add", f"hf:{REPO_ID}/{FILENAME}",
            "--id", "smollm2-from-hub", "--price-in", "3", "--price-out", "4", "--no-fingerprint",
        )
        assert added.returncode == 0, added.stderr
        await wait_for(lambda: coordinator.services.catalogue.get("smollm2-from-hub") is not None,
                       10, "the catalogue to reload")
        priced = coordinator.services.catalogue.get("smollm2-from-hub")
        assert priced is not None
        assert (priced.model.weights[0].repo, priced.model.weights[0].filename) == (
            REPO_ID, FILENAME
        )
        # A model whose catalogue hash the hub's bytes do not match.
        await add_model(coordinator.services.database, CatalogueModel(
            id=ModelId("tampered"), name="tampered", chat_template=True, context_length=8192,
            parameters="135M", weights=(WeightsFile(sha256="0" * 64, filename=FILENAME,
                                                    repo=REPO_ID),),
        ), Price(1, 1), None, datetime.now(UTC))
        await wait_for(lambda: coordinator.services.catalogue.get("tampered") is not None,
                       10, "the catalogue to reload")

        listed = await run_cli(node_env, "agent", "models", "list", "--json",
                               "--coordinator", coordinator.base_url)
        assert listed.returncode == 0, listed.stderr
        models = {m["id"]: m for m in _objects(listed.stdout)}
        assert models["smollm2-from-hub"]["weights"][0]["repo"] == REPO_ID
        assert models["smollm2-from-hub"]["here"] is None
        assert models["smollm2-from-hub"]["price_output_per_1m"] == 4

        pulled = await run_cli(node_env, "agent", "models", "pull", "smollm2-from-hub", "-q",
                               "--coordinator", coordinator.base_url)
        assert pulled.returncode == 0, pulled.stderr
        target = tmp_path / "node-cache" / "koretex" / "models" / FILENAME
        assert target.read_bytes() == smollm2_path.read_bytes()
        assert any(r.startswith("GET ") for r in files.requests)
        again = await run_cli(node_env, "agent", "models", "pull", "smollm2-from-hub", "-q",
                              "--coordinator", coordinator.base_url)
        assert again.returncode == 0, again.stderr

        target.unlink()
        bad = await run_cli(node_env, "agent", "models", "pull", "tampered", "-q",
                            "--coordinator", coordinator.base_url)
        assert bad.returncode == 1 and "deleted it" in bad.stderr
        assert not target.exists()

        unsourced = await run_cli(node_env, "agent", "models", "pull", "gemma-3-270m", "-q",
                                  "--coordinator", coordinator.base_url)
        assert unsourced.returncode == 1 and "no download source" in unsourced.stderr
    finally:
        await coordinator.stop()


def _objects(text: str) -> list[dict[str, Any]]:
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


def test_a_hub_reference_that_does_not_parse_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "models", "add", "hf:not a repo", "--id", "x",
         "--price-in", "1", "--price-out", "1"],
        cwd=REPO, text=True, capture_output=True, timeout=120,
        env={**os.environ, "KORETEX_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
    )
    assert done.returncode == 1 and "hf:OWNER/REPO/FILE" in done.stderr
