"""Reference runs in the agent's engine, for ``koretex-coordinator models``.

The coordinator runs no engine and imports no agent code: a reference run starts the agent's
reference command (``python -m agent.reference``, :mod:`protocol.reference`) as a child process
with the same interpreter, writes the request to its stdin and validates the JSON answer. It
needs the agent (and, for fingerprints and calibration, llama.cpp) installed where it runs:
``pip install 'koretex[agent,llama]'``; the serving coordinator never calls it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from protocol.fingerprint import FingerprintMismatch
from protocol.reference import (
    CalibrationRun,
    DescribeWeights,
    FingerprintRun,
    ReferenceFailure,
    WeightsDescription,
)

Answer = TypeVar("Answer", bound=BaseModel)

AGENT_MISSING = (
    "reference runs use the node agent's engine, which is not installed with this coordinator: "
    "pip install 'koretex[agent,llama]'"
)


class ReferenceRunFailed(RuntimeError):
    """The reference command could not run, or could not use the weights; the message says
    which part is missing or wrong."""


async def run_reference(
    request: DescribeWeights | FingerprintRun | CalibrationRun, answer: type[Answer]
) -> Answer:
    """The agent's answer to ``request``; :class:`ReferenceRunFailed` (or, for weights that are
    not the model's, :class:`FingerprintMismatch`) otherwise."""
    if importlib.util.find_spec("agent") is None:  # finding it imports nothing
        raise ReferenceRunFailed(AGENT_MISSING)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.reference", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await child.communicate(request.model_dump_json().encode())
    finally:
        if child.returncode is None:  # cancelled: the engine must not outlive the command
            child.kill()
            await child.wait()
    if child.returncode == 1:
        try:
            failure = ReferenceFailure.model_validate_json(stdout)
        except ValidationError:
            failure = None
        if failure is not None and failure.kind == "weights_mismatch":
            raise FingerprintMismatch(failure.message)
        if failure is not None:
            raise ReferenceRunFailed(failure.message)
    if child.returncode != 0:
        said = stderr.decode(errors="replace").strip()
        if "No module named" in said and "agent" in said:
            raise ReferenceRunFailed(AGENT_MISSING)
        raise ReferenceRunFailed(
            f"the reference command failed (exit status {child.returncode}): {said[-2000:]}"
        )
    try:
        return answer.model_validate_json(stdout)
    except ValidationError as exc:
        raise ReferenceRunFailed(f"the reference command answered nonsense: {exc}") from exc


async def describe_weights(path: Path) -> WeightsDescription:
    """What a GGUF file or MLX directory says about itself, and its sha256."""
    return await run_reference(DescribeWeights(weights=str(path)), WeightsDescription)
