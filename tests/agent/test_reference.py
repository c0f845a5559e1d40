"""The reference command (``python -m agent.reference``): one JSON request in on stdin, one JSON
answer out on stdout, as ``koretex-coordinator models`` runs it. Real llama.cpp on the seeded
tiny models; the coordinator-side callers are tested in ``tests/coordinator``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cluster import REPO

from protocol import catalogue
from protocol.fingerprint import Fingerprint
from protocol.reference import (
    CalibrationRecord,
    CalibrationRun,
    DescribeWeights,
    EngineSetup,
    FingerprintRun,
    ReferenceFailure,
    WeightsDescription,
)


def reference(request: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.reference"], input=request, cwd=REPO, text=True,
        capture_output=True, timeout=300, env={**os.environ, **(env or {})}, check=False,
    )


def test_weights_are_described_with_their_catalogue_identity(gemma_path: Path) -> None:
    done = reference(DescribeWeights(weights=str(gemma_path)).model_dump_json())
    assert done.returncode == 0, done.stderr
    described = WeightsDescription.model_validate_json(done.stdout)
    seeded = catalogue.by_id("gemma-3-270m")
    assert seeded is not None
    assert described.sha256 == seeded.weights[0].sha256
    assert described.engine == "llama.cpp" and described.architecture == "gemma3"
    assert described.quantization == "Q4_K_M" and described.name == "Gemma 3 270m"
    assert described.context_length == 32768
    assert described.size_bytes == gemma_path.stat().st_size


def test_unusable_weights_and_unreadable_requests_are_refused_by_name(tmp_path: Path) -> None:
    notes = tmp_path / "notes.gguf"
    notes.write_text("not weights")
    done = reference(DescribeWeights(weights=str(notes)).model_dump_json())
    assert done.returncode == 1
    failure = ReferenceFailure.model_validate_json(done.stdout)
    assert failure.kind == "unusable_weights" and "not a GGUF file" in failure.message

    garbled = reference('{"type": "describe_weights"}')
    assert garbled.returncode == 2 and garbled.stdout == ""
    assert "not a reference request" in garbled.stderr


def test_a_fingerprint_run_finds_the_weights_a_node_would_serve(
    smollm2_path: Path, tmp_path: Path
) -> None:
    model = catalogue.by_id("smollm2-135m-instruct")
    assert model is not None
    models = tmp_path / "cache" / "koretex" / "models"
    models.mkdir(parents=True)
    (models / model.weights[0].filename).symlink_to(smollm2_path)
    request = FingerprintRun(model=model, prompts=("Name a colour.",), max_tokens=6, threads=1)
    done = reference(request.model_dump_json(), {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    fingerprint = Fingerprint.model_validate_json(done.stdout)
    assert fingerprint.weights_sha256 == model.weights[0].sha256
    assert fingerprint.engine == "llama.cpp" and fingerprint.model == model.id
    (answer,) = fingerprint.answers
    assert answer.params.temperature == 0.0 and 0 < len(answer.tokens) <= 6
    assert all(len(token.top) == 5 for token in answer.tokens)

    elsewhere = reference(request.model_dump_json(), {"XDG_CACHE_HOME": str(tmp_path / "none")})
    assert elsewhere.returncode == 1
    missing = ReferenceFailure.model_validate_json(elsewhere.stdout)
    assert missing.kind == "unusable_weights" and "not downloaded yet" in missing.message


def test_each_setup_scores_exactly_the_tokens_every_other_setup_answered(
    smollm2_path: Path,
) -> None:
    model = catalogue.by_id("smollm2-135m-instruct")
    assert model is not None
    setups = (EngineSetup(threads=1, batch=64, context=512),
              EngineSetup(threads=2, batch=512, context=1024))
    request = CalibrationRun(
        model=model, weights=str(smollm2_path), setups=setups, prompts=("Say hello.",),
        temperatures=(0.0, 1.0), max_tokens=8, seed=1,
    )
    done = reference(request.model_dump_json())
    assert done.returncode == 0, done.stderr
    record = CalibrationRecord.model_validate_json(done.stdout)
    assert [(a.generator, a.temperature) for a in record.answers] == [
        (str(setups[0]), 0.0), (str(setups[0]), 1.0), (str(setups[1]), 0.0),
        (str(setups[1]), 1.0),
    ]
    for answer in record.answers:
        (scoring,) = answer.scorings
        assert scoring.scorer != answer.generator
        assert answer.claimed
        assert [t.token_id for t in scoring.tokens] == [t.token_id for t in answer.claimed]
