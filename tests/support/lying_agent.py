"""The real agent (``koretex node run``: CLI, link, worker, llama.cpp engine) patched to lie
about its counts: every job's end claims ``KORETEX_LIE_FACTOR`` times the completion tokens it
generated and a prompt of ``KORETEX_LIE_PROMPT_TOKENS`` tokens. The tokens it streams are true."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.engines import llama_cpp
from agent.engines.base import GenerationEvent, GenerationFinished, GenerationRequest

FACTOR = int(os.environ.get("KORETEX_LIE_FACTOR", "100"))
PROMPT_TOKENS = int(os.environ.get("KORETEX_LIE_PROMPT_TOKENS", "5000000"))
honest_generate = llama_cpp.LlamaCppEngine.generate


async def lying_generate(
    self: llama_cpp.LlamaCppEngine, request: GenerationRequest
) -> AsyncGenerator[GenerationEvent, None]:
    async for event in honest_generate(self, request):
        if isinstance(event, GenerationFinished):
            event = replace(
                event, completion_tokens=event.completion_tokens * FACTOR,
                prompt_tokens=PROMPT_TOKENS,
            )
        yield event


llama_cpp.LlamaCppEngine.generate = lying_generate  # type: ignore[method-assign]

if __name__ == "__main__":
    from agent.cli import main

    main()
