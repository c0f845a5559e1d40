"""GET /metrics reports what this replica served: requests by route and status, job attempts and
tokens by model, measured speed, and the nodes, slots and queues it holds at scrape time."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.cluster import AgentProcess, RunningCoordinator

from coordinator.routing.throughput import MIN_TOKENS_PER_SAMPLE

MODEL = "smollm2-135m-instruct"
# Long enough an answer that each job yields a speed sample (MIN_TOKENS_PER_SAMPLE tokens).
PROMPT = [{"role": "user", "content": "Count from one to thirty in words."}]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(coordinator: RunningCoordinator) -> Samples:
    # No scrape token is set: served because the test is a loopback peer no proxy forwarded
    # (tests/security/test_metrics_auth.py plays the stranger).
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_what_the_replica_served(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    before = await scrape(coordinator)
    client = await coordinator.client()
    whole = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=16, temperature=0  # type: ignore[arg-type]
    )
    stream = await client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=16, temperature=0,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = [chunk.usage async for chunk in stream if chunk.usage is not None]
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="no-such-model", messages=PROMPT  # type: ignore[arg-type]
        )
    after = await scrape(coordinator)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/v1/chat/completions", "method": "POST"}
    assert grew("koretex_http_requests_total", **route, status="200") == 2
    assert grew("koretex_http_requests_total", **route, status="404") == 1
    assert grew("koretex_http_request_duration_seconds_count",
                route="/v1/chat/completions") == 3
    # Probes may run meanwhile; paid attempts are counted apart from them.
    assert grew("koretex_jobs_total", model=MODEL, kind="paid", outcome="success") == 2
    assert whole.usage is not None and streamed
    delivered = whole.usage.completion_tokens + streamed[0].completion_tokens
    assert grew("koretex_tokens_received_total", model=MODEL, kind="paid") == delivered
    measurable = [n for n in (whole.usage.completion_tokens, streamed[0].completion_tokens)
                  if n >= MIN_TOKENS_PER_SAMPLE]
    assert len(measurable) == 2
    assert grew("koretex_node_tokens_per_second_count", model=MODEL) >= len(measurable)
    assert value(after, "koretex_nodes", connected="here", breaker="closed") == 1
    assert value(after, "koretex_slots") == 2
    assert value(after, "koretex_jobs_in_flight") == 0
    assert value(after, "koretex_limit_unchecked_total", limit="rate") == 0
    assert ("koretex_ledger_writes_queued", frozenset()) in after
