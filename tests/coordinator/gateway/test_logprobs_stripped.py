"""Every job asks the node for the same logprobs; the consumer gets exactly what it asked for."""

from __future__ import annotations

import pytest
from support.cluster import AgentProcess, RunningCoordinator

from coordinator.hub.observation import JobObservation

MODEL = "smollm2-135m-instruct"
PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stream", [False, True])
async def test_consumers_get_exactly_the_logprobs_they_asked_for(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess, stream: bool
) -> None:
    seen: list[JobObservation] = []
    coordinator.services.observers.append(seen.append)
    asked = coordinator.settings.job_top_logprobs
    client = await coordinator.client()
    for logprobs, top in ((False, None), (True, 0), (True, 2), (True, asked + 2)):
        extra = {} if top is None else {"top_logprobs": top}
        if stream:
            chunks = [chunk async for chunk in await client.chat.completions.create(
                model=MODEL, messages=PROMPT, max_tokens=8, stream=True,  # type: ignore[arg-type]
                logprobs=logprobs, **extra,
            )]
            items = [item for chunk in chunks if chunk.choices and chunk.choices[0].logprobs
                     for item in chunk.choices[0].logprobs.content or []]
            if not logprobs:
                assert all(not c.choices or c.choices[0].logprobs is None for c in chunks)
        else:
            completion = await client.chat.completions.create(
                model=MODEL, messages=PROMPT, max_tokens=8, logprobs=logprobs,  # type: ignore[arg-type]
                **extra,
            )
            choice = completion.choices[0]
            if not logprobs:
                assert choice.logprobs is None
            items = list(choice.logprobs.content or []) if choice.logprobs else []
        job = seen[-1]
        assert not job.probe and job.job.top_logprobs == max(asked, top or 0)
        assert job.logprobs and all(len(lp.top) == max(asked, top or 0) for lp in job.logprobs)
        if logprobs:
            assert len(items) == job.tokens, "one entry per token delivered"
            assert all(len(item.top_logprobs) == top for item in items)
        else:
            assert items == []
