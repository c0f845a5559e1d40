"""What weights say about themselves, and whether the models asked for fit before any loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cluster import REPO, write_node_key

from agent.errors import ConfigurationError
from agent.fit import MIB, Planned, check_fit, offered_context
from agent.weights_info import describe


def test_the_shipped_gguf_files_describe_themselves(gemma_path: Path, smollm2_path: Path) -> None:
    gemma, smollm2 = describe(gemma_path), describe(smollm2_path)
    assert (gemma.architecture, gemma.quantization, gemma.context_length) == (
        "gemma3", "Q4_K_M", 32768
    )
    assert not gemma.chat_template and gemma.parameters == "270M"
    assert (smollm2.architecture, smollm2.quantization, smollm2.context_length) == (
        "llama", "Q4_1", 8192
    )
    assert smollm2.chat_template and smollm2.parameters == "135M"
    # 18 layers x 1 KV head x (256 + 256) x 2 bytes; 30 layers x 3 KV heads x (64 + 64) x 2 bytes
    assert gemma.kv_bytes_per_token == 18 * 1 * 512 * 2
    assert smollm2.kv_bytes_per_token == 30 * 3 * 128 * 2
    assert gemma.size_bytes == gemma_path.stat().st_size


def test_a_node_offers_its_configured_context_but_never_past_the_weights(
    smollm2_path: Path,
) -> None:
    info = describe(smollm2_path)
    assert offered_context(info, 4096) == 4096
    assert offered_context(info, 100_000) == 8192


def test_models_that_do_not_fit_are_refused_with_the_numbers(
    gemma_path: Path, smollm2_path: Path
) -> None:
    planned = [
        Planned("gemma-3-270m", describe(gemma_path), 4096),
        Planned("smollm2-135m-instruct", describe(smollm2_path), 4096),
    ]
    needs = check_fit(planned, slots=2, available_bytes=8 << 30, headroom_bytes=1 << 30)
    expected = sum(p.info.size_bytes + p.info.kv_bytes_per_token * 4096 * 2 for p in planned)
    assert needs == expected
    with pytest.raises(ConfigurationError) as refused:
        check_fit(planned, slots=2, available_bytes=needs + (1 << 30) - 1,
                  headroom_bytes=1 << 30)
    message = str(refused.value)
    assert f"need {needs // MIB} MiB" in message and "1024 MiB headroom" in message
    assert "gemma-3-270m" in message and "2 slot(s) x 4096 tokens" in message


def test_node_run_refuses_models_that_do_not_fit_before_loading(
    gemma_path: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    key = tmp_path / "node.key"
    write_node_key(key)
    done = subprocess.run(
        [sys.executable, "-m", "agent", "node", "run", "--coordinator", "http://127.0.0.1:9",
         "--model", str(gemma_path), "--model", str(smollm2_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "KORETEX_KEY_STORE": "file", "KORETEX_KEY_FILE": str(key),
             "KORETEX_MEMORY_HEADROOM_MB": str(1 << 30),  # more than any machine has
             "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path),
             "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert done.returncode == 78, done.stderr
    assert "do not fit in memory" in done.stderr and "headroom" in done.stderr
