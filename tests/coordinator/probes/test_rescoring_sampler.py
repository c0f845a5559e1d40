"""The re-scoring sampler's observer side: random, bounded, never in the consumer's way."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from coordinator.hub.observation import JobObservation
from coordinator.probes.rescoring import RescoringSampler, score_request
from coordinator.routing import Outcome
from coordinator.settings import CoordinatorSettings
from protocol.chat import ChatMessage, SamplingParams, TokenLogprob
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import Job


def observation(
    outcome: Outcome = Outcome.SUCCESS, ids: tuple[int | None, ...] = (5, 6),
    continuation: str = "",
) -> JobObservation:
    job = Job(
        job_id=JobId("job-1"), model=ModelId("gemma-3-270m"),
        messages=(ChatMessage(role="user", content="Hi"),),
        params=SamplingParams(max_tokens=8), top_logprobs=5, continuation=continuation,
    )
    logprobs = tuple(
        TokenLogprob(token_id=i, token=f"<{n}>", logprob=-0.1) for n, i in enumerate(ids)
    )
    return JobObservation(
        node_id=NodeId("node"), job=job, probe=False, outcome=outcome, text="".join(
            lp.token for lp in logprobs), logprobs=logprobs, tokens=len(ids), tok_s=None,
        finished_at=1.0,
    )


def sampler(rate: float, queue: int = 2, probation: int = 0) -> RescoringSampler:
    settings = CoordinatorSettings(authenticity={  # type: ignore[arg-type]
        "rescore_rate": rate, "rescore_queue": queue, "rescore_probation_jobs": probation,
    })
    services: Any = SimpleNamespace(settings=settings)
    return RescoringSampler(services, random.Random(1))


async def test_a_full_queue_drops_samples_instead_of_waiting() -> None:
    every = sampler(1.0, queue=2)
    for _ in range(5):
        every(observation())  # returns at once, even with no loop draining the queue
    assert (every.counts.sampled, every.counts.dropped) == (2, 3)


async def test_only_successful_answers_with_logprobs_are_sampled() -> None:
    every = sampler(1.0, queue=10)
    every(observation(Outcome.FAILURE))
    every(observation(Outcome.NEUTRAL))
    every(observation(ids=()))
    assert every.counts.sampled == 0
    every(observation())
    assert every.counts.sampled == 1


async def test_the_sample_rate_is_a_random_share() -> None:
    some = sampler(0.25, queue=1000)
    for _ in range(800):
        some(observation())
    assert 140 < some.counts.sampled < 260
    none = sampler(0.0)
    none(observation())
    assert none.counts.sampled == 0


async def test_a_nodes_first_paid_answers_are_all_re_scored() -> None:
    on_probation = sampler(0.0, queue=1000, probation=20)
    for _ in range(50):
        on_probation(observation())
    assert on_probation.counts.sampled == 20


def test_a_scoring_names_the_ids_the_node_reported_else_its_text() -> None:
    by_ids = score_request(observation(continuation="Earlier "), JobId("s-1"), 5)
    assert by_ids.continuation.token_ids == (5, 6)
    assert by_ids.prefix == "Earlier "
    assert by_ids.top_logprobs == 5
    by_text = score_request(observation(ids=(5, None)), JobId("s-2"), 5)
    assert by_text.continuation.token_ids is None
    assert by_text.continuation.text == "<0><1>"


def test_a_long_answer_is_scored_on_its_first_tokens_only() -> None:
    long = observation(ids=tuple(range(40)))
    request = score_request(long, JobId("s-3"), 5, max_tokens=16)
    assert request.continuation.token_ids == tuple(range(16))
    assert request.continuation.text == "".join(f"<{n}>" for n in range(16))
