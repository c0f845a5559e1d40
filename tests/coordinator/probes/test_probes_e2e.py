"""Unannounced probes on real agents: they arrive, look exactly like paid jobs, and count."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for

from coordinator.hub.observation import JobObservation
from coordinator.lifecycles import PROBE_SCHEDULER
from coordinator.points import AuthenticityVerdict, ProbeResult
from coordinator.probes.scheduler import ProbeScheduler
from coordinator.probes.sources import ProbeDraw
from coordinator.routing import RoutingConstants
from coordinator.store.contributions import load_contributions
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId, NodeId

MODEL = "smollm2-135m-instruct"  # scripted nodes: the model is a label
FULL_RAMP = RoutingConstants(ramp_start_fraction=1.0)
PAID_PROMPT = "Write a haiku about the sea (paid)."
PROBING = {"enabled": True, "interval_s": 0.4, "tick_s": 0.05}


def probe_results(coordinator: RunningCoordinator, node_id: str) -> list[ProbeResult]:
    keeper = coordinator.services.points
    assert keeper is not None
    return [r for r in keeper.batcher.preview()
            if isinstance(r, ProbeResult) and r.node_id == node_id]


def probes_of(coordinator: RunningCoordinator, node_id: str) -> int:
    return sum(r.count for r in probe_results(coordinator, node_id))


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not contents."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(shape(item), sort_keys=True) for item in value})
    return type(value).__name__ if value is not None else "null|any"


def scheduler(coordinator: RunningCoordinator) -> ProbeScheduler:
    return coordinator.runner.app[PROBE_SCHEDULER]


async def test_probes_reach_every_node_and_look_exactly_like_paid_jobs(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP, probes=PROBING
    )
    logs = [tmp_path / f"jobs-{i}.jsonl" for i in range(2)]
    agents = [
        AgentProcess.scripted(coordinator, tmp_path / f"a{i}", "--log-jobs", str(logs[i]),
                              "--delay", "0.002")
        for i in range(2)
    ]
    try:
        for agent in agents:
            await agent.start()
        client = await coordinator.client()
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": PAID_PROMPT}], max_tokens=128,
        )
        for agent in agents:
            await wait_for(lambda a=agent: probes_of(coordinator, a.node_id) >= 3, 60,  # type: ignore[misc]
                           "three probes of each node")

        frames = [json.loads(line) for log in logs if log.exists()
                  for line in log.read_text().splitlines()]
        paid = [f for f in frames if f["messages"][-1]["content"] == PAID_PROMPT]
        probes = [f for f in frames if f["messages"][-1]["content"] != PAID_PROMPT]
        assert len(paid) == 1 and len(probes) >= 6
        top = coordinator.settings.job_top_logprobs
        for frame in [*paid, *probes]:
            assert set(frame) == set(paid[0])
            assert set(frame["params"]) == set(paid[0]["params"])
            assert all(set(m) == {"role", "content"} for m in frame["messages"])
            assert re.fullmatch(r"job-[0-9a-f]{16}-\d+", frame["job_id"])
            assert frame["top_logprobs"] == top and frame["continuation"] == ""
            assert frame["model"] == MODEL
        assert len({f["messages"][-1]["content"] for f in probes}) > 1, "drawn from a pool"

        services = coordinator.services
        for agent in agents:
            node = NodeId(agent.node_id)
            assert all(r.passed for r in probe_results(coordinator, agent.node_id))
            wall_now = services.clock.now().timestamp()
            buckets = services.router.health_buckets(node, wall_now=wall_now)
            assert sum(b.probe_successes for b in buckets) >= 3, "probes feed the health window"
            assert sum(b.successes for b in buckets) <= 1, "only the paid job counts as a job"
            assert services.throughput.sustained(node, ModelId(MODEL)) is not None, (
                "speed measured from the probes' tokens"
            )
    finally:
        for agent in agents:
            await agent.stop()
        await coordinator.stop()


async def test_a_probe_never_takes_the_slot_a_paid_request_needs(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    # Each answer holds the slot two seconds before its first token (time to see the paid job in
    # flight), then streams fast: the probe that follows may ask for up to 512 tokens.
    agent = AgentProcess.scripted(
        coordinator, tmp_path / "a", "--first-token-delay", "2", "--delay", "0.002"
    )
    try:
        await agent.start()
        node = NodeId(agent.node_id)
        client = await coordinator.client()
        paid = asyncio.create_task(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=40,
        ))
        services = coordinator.services
        await wait_for(
            lambda: services.router.snapshot(node, now=services.clock.monotonic()).in_flight == 1,
            30, "the paid job to start",
        )
        assert scheduler(coordinator).start_probe(node) is None, "the only slot is taken"
        await paid
        task = scheduler(coordinator).start_probe(node)
        assert task is not None
        verdict = await task
        assert verdict is not None and verdict.passed
    finally:
        await agent.stop()
        await coordinator.stop()


class Judged:
    """A test source whose judge knows the scripted model's answer (w0 w1 …)."""

    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        return ProbeDraw(
            (ChatMessage(role="user", content="Count for me."),), SamplingParams(max_tokens=12),
            judge=lambda observation: observation.text.startswith("w0 w1 w2"),
        )


async def test_failed_and_misjudged_probes_fail_and_a_wrong_model_is_a_fake_verdict(
    tmp_path: Path, database_url: str
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, routing=FULL_RAMP
    )
    failing = AgentProcess.scripted(coordinator, tmp_path / "f", "--fail-first", "1")
    honest = AgentProcess.scripted(coordinator, tmp_path / "h")
    other = AgentProcess.scripted(coordinator, tmp_path / "o", "--word-prefix", "x")
    try:
        for agent in (failing, honest, other):
            await agent.start()
        services = coordinator.services
        services.probe_sources.insert(0, Judged())
        verdicts = {}
        for agent in (failing, honest, other):
            task = scheduler(coordinator).start_probe(NodeId(agent.node_id))
            assert task is not None
            verdicts[agent.node_id] = await task
        assert verdicts[failing.node_id] is not None and not verdicts[failing.node_id].passed
        assert verdicts[honest.node_id] is not None and verdicts[honest.node_id].passed
        assert verdicts[other.node_id] is not None and not verdicts[other.node_id].passed
        keeper = services.points
        assert keeper is not None
        async with services.database.session() as session:
            stored = await load_contributions(session)  # a fake verdict is stored at once
        authenticity = {r.node_id: r.genuine for r in [*stored, *keeper.batcher.preview()]
                        if isinstance(r, AuthenticityVerdict)}
        assert authenticity == {honest.node_id: True, other.node_id: False}, (
            "a transport failure is no verdict on the model"
        )
        assert [r.node_id for r in stored if isinstance(r, AuthenticityVerdict)] == [
            other.node_id
        ]
        wall = services.clock.now().timestamp()
        for agent, failures in ((failing, 1), (honest, 0), (other, 1)):
            buckets = services.router.health_buckets(NodeId(agent.node_id), wall_now=wall)
            assert sum(b.probe_failures for b in buckets) == failures
    finally:
        for agent in (failing, honest, other):
            await agent.stop()
        await coordinator.stop()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_probe_of_a_real_llama_agent_passes_with_full_logprobs(
    coordinator: RunningCoordinator, gemma_agent: AgentProcess
) -> None:
    seen: list[JobObservation] = []
    services = coordinator.services
    services.observers.append(seen.append)
    task = scheduler(coordinator).start_probe(NodeId(gemma_agent.node_id))
    assert task is not None
    verdict = await task
    assert verdict is not None and verdict.passed
    [observation] = seen
    assert observation.probe and observation.tokens > 0 and observation.text
    assert observation.logprobs and all(
        len(lp.top) == coordinator.settings.job_top_logprobs for lp in observation.logprobs
    )
