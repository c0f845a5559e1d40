"""Authenticity end to end: a real coordinator, real agents, the official client.

Two honest agents on the real Gemma 3 270M are the platform's trusted verifiers; a third agent
claims Gemma 3 270M (lying about its sha256) and is the smart cheat: it answers the fingerprint
prompts it has memorised with the genuine weights and everything else with a cruder
re-quantization. Fingerprint probes pass it; re-scoring of paid jobs catches it, while the honest
nodes' jobs are re-scored as genuine and every consumer call succeeds.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from contextlib import aclosing
from pathlib import Path

import pytest
from support.cluster import REPO, AgentProcess, start_coordinator, wait_for, write_node_key

from coordinator.contributions import AuthenticityVerdict, Contribution
from coordinator.gateway.completion import CompletionSpec, Piece, stream_completion
from coordinator.hub.calls import new_job_id
from coordinator.hub.observation import InMemoryContributions
from coordinator.probes.fingerprints import FingerprintSource
from coordinator.probes.rescoring import RescoringSampler
from coordinator.services import Services
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId, NodeId
from protocol.messages import Job, TokenDelta

pytestmark = pytest.mark.slow

MODEL = ModelId("gemma-3-270m")
SLOTS = 6  # two on each of the three agents
MAX_PAID_JOBS = 18  # the cheat must be caught within this many consumer calls


async def probe(services: Services, node_id: NodeId, source: FingerprintSource) -> bool:
    """One fingerprint probe of ``node_id``, judged, as the probe scheduler sends it: whether
    it passed (genuine, or too close to call)."""
    draw = source.draw(MODEL, random.Random())
    assert draw is not None and draw.judge is not None
    job = Job(job_id=new_job_id(), model=MODEL, messages=draw.messages, params=draw.params,
              top_logprobs=services.settings.job_top_logprobs)
    services.router.job_started(node_id, now=services.clock.monotonic())
    observed: list[bool] = []

    def observe(observation: object) -> None:
        from coordinator.hub.observation import JobObservation

        assert isinstance(observation, JobObservation)
        if observation.job.job_id == job.job_id:
            assert draw.judge is not None
            observed.append(draw.judge(observation))

    services.observers.append(observe)
    try:
        async with aclosing(services.calls.run(node_id, job, probe=True)) as events:
            async for event in events:
                assert isinstance(event, TokenDelta) or event.finish_reason in ("stop", "length")
    finally:
        services.observers.remove(observe)
    return len(observed) == 1 and observed[0] is not False  # None: undecided, no verdict


async def test_a_node_honest_on_probes_and_cheating_on_paid_jobs_is_caught(
    tmp_path: Path, gemma_path: Path, requantized_path: Path
) -> None:
    trusted = [write_node_key(tmp_path / name / "node.key") for name in ("trusted-1", "trusted-2")]
    coordinator = await start_coordinator(
        tmp_path / "coordinator",
        authenticity={"trusted_nodes": trusted, "rescore_rate": 1.0, "rescore_queue": 8},
        # Three engines share two cores here: speed is not what this test is about.
        routing={"floor_tok_s": 0.0}, queue_wait_s=60.0,
    )
    services = coordinator.services
    sink = InMemoryContributions()
    keeper = services.points
    record_fake, add = keeper.record_fake, keeper.add

    def add_also_to_sink(contribution: Contribution) -> None:
        sink.add(contribution)
        add(contribution)

    keeper.add = add_also_to_sink  # type: ignore[method-assign]

    async def fake_also_in_sink(verdict: AuthenticityVerdict) -> bool:
        sink.add(verdict)  # a fake verdict goes to the store at once, not to the batch
        return await record_fake(verdict)

    keeper.record_fake = fake_also_in_sink  # type: ignore[method-assign]
    sampler = next(o for o in services.observers if isinstance(o, RescoringSampler))
    priced = services.catalogue.get(MODEL)
    assert priced is not None and priced.fingerprint is not None
    fingerprint = priced.fingerprint
    memorised = tmp_path / "memorised.json"
    memorised.write_text(json.dumps([a.messages[-1].content for a in fingerprint.answers]))

    verifiers = [
        AgentProcess.llama(coordinator, gemma_path, tmp_path / "trusted-1", slots=2,
                           extra=["--threads", "1"]),
        AgentProcess.llama(coordinator, gemma_path, tmp_path / "trusted-2", slots=2,
                           extra=["--threads", "2"]),
    ]
    impostor = AgentProcess(coordinator, [
        sys.executable, str(REPO / "tests" / "support" / "impostor_agent.py"),
        "--coordinator", coordinator.base_url, "--weights", str(requantized_path),
        "--genuine", str(gemma_path), "--memorised", str(memorised), "--slots", "2",
    ], tmp_path / "impostor")
    for agent, node_id in zip(verifiers, trusted, strict=True):
        agent.node_id = node_id  # keys written beforehand, so the coordinator could trust them
    agents = [*verifiers, impostor]
    try:
        for agent in agents:
            await agent.start()
        cheat = NodeId(impostor.node_id)

        # Probes: the memorised fingerprints come back genuine.
        verdicts: list[AuthenticityVerdict] = []
        source = FingerprintSource({MODEL: fingerprint}, services.settings.authenticity.tolerances,
                                   verdicts.append)
        assert all([await probe(services, cheat, source) for _ in range(2)])
        assert verdicts and all(v.genuine and v.node_id == cheat for v in verdicts)

        # Paid jobs, re-scored after the fact on the trusted nodes. Gemma 3 270M base has no chat
        # template, so the consumer's call is the gateway's own completion run (routing, retries,
        # observers), as a completions request runs it.
        prompts = ["Tell me about the history of tea.", "What makes a good password?",
                   "Describe a sunset over the ocean.", "How do bees make honey?"]

        def caught() -> bool:
            return any(
                isinstance(c, AuthenticityVerdict) and c.node_id == cheat and not c.genuine
                for c in sink.items
            )

        async def paid(call: int) -> None:
            spec = CompletionSpec(
                MODEL, (ChatMessage(role="user", content=prompts[call % len(prompts)]),),
                SamplingParams(max_tokens=32, temperature=1.0 if call % 2 else 0.0), 0,
            )
            text: list[str] = []
            async with aclosing(stream_completion(services, spec)) as pieces:
                async for piece in pieces:
                    if isinstance(piece, Piece):
                        text.append(piece.text)
            assert "".join(text)  # the consumer is served regardless

        # Calls go out a full network's worth of slots at a time: least-loaded routing then gives
        # the cheat its share, whatever the health scores say about who is best when idle.
        for first in range(0, MAX_PAID_JOBS, SLOTS):
            await asyncio.gather(*(paid(call) for call in range(first, first + SLOTS)))
            await wait_for(lambda: sampler.counts.sampled == sum(
                (sampler.counts.genuine, sampler.counts.substituted,
                 sampler.counts.inconclusive, sampler.counts.unverified)
            ), timeout=120, what="the re-scoring queue to drain")
            if caught():
                break
        assert caught(), f"not caught in {MAX_PAID_JOBS} paid jobs: {sampler.counts}"
        honest = {NodeId(agent.node_id) for agent in verifiers}
        rescored = [c for c in sink.items if isinstance(c, AuthenticityVerdict)]
        assert all(v.genuine for v in rescored if v.node_id in honest), rescored
        assert sampler.counts.dropped == 0
    finally:
        for agent in agents:
            await agent.stop()
        await coordinator.stop()


async def test_an_honest_agent_cannot_pass_other_weights_off_as_a_catalogue_model(
    tmp_path: Path, requantized_path: Path
) -> None:
    """Through the product, other weights register with their own sha256 and are refused: only
    an agent that lies about the hash gets in, and the checks above are what catch it."""
    coordinator = await start_coordinator(tmp_path / "coordinator")
    agent = AgentProcess.llama(coordinator, requantized_path, tmp_path / "agent",
                               extra=["--model-id", str(MODEL)])
    try:
        await agent.start(wait=False)
        assert await agent.wait_exit(timeout=120) == 78
        assert "weights do not match catalogue model" in agent.log_text()
        assert len(coordinator.services.hub) == 0
    finally:
        await agent.stop()
        await coordinator.stop()
