"""Re-scoring by default, end to end: no trusted node is configured, so a peer verifies.

A real coordinator (probes on, the default exam; every paid job sampled so the test is short), a
real honest agent on Gemma 3 270M enrolled to one operator and on the network for longer than the
routing ramp, and a real cheat enrolled to another: it serves the genuine weights while it sits its
admission exam, then Gemma 3 270M re-quantized to Q4_0 under the genuine sha256. Consumers call
/v1/completions through the official client. The honest node re-scores the cheat's paid answers,
the two disagree, and both sit a fingerprint re-exam: the honest node passes and serves paid
traffic again, the cheat fails and serves none.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from support.cluster import REPO, AgentProcess, start_coordinator, wait_for, write_node_key
from support.enrollment import mint, signed_in

from coordinator.gateway.chat import NODE_HEADER
from coordinator.hub.exam import ExamState
from coordinator.probes.rescoring import RescoringSampler
from coordinator.store.models import Node
from protocol.ids import ModelId, NodeId

pytestmark = pytest.mark.slow

MODEL = ModelId("gemma-3-270m")
PROMPTS = ("Tell me about the history of tea.", "What makes a good password?",
           "Describe a sunset over the ocean.", "How do bees make honey?")
PAID_AFTER = 6  # paid calls the honest node serves after its re-exam


async def test_without_trusted_nodes_a_peer_catches_a_node_cheating_after_its_exam(
    tmp_path: Path, gemma_path: Path, requantized_path: Path
) -> None:
    coordinator = await start_coordinator(
        tmp_path / "coordinator", probes={"enabled": True}, authenticity={"rescore_rate": 1.0},
        routing={"floor_tok_s": 0.0}, queue_wait_s=120.0,  # two engines share two busy cores
    )
    services = coordinator.services
    settings = services.settings.authenticity
    assert not settings.trusted_nodes and not settings.trusted_operators
    sampler = next(o for o in services.observers if isinstance(o, RescoringSampler))
    verdicts: list[tuple[NodeId, bool]] = []
    record = services.admission.verdict

    def spy(node_id: NodeId, model: ModelId, *, genuine: bool) -> None:
        verdicts.append((node_id, genuine))
        record(node_id, model, genuine=genuine)

    services.admission.verdict = spy  # type: ignore[method-assign]

    # The honest node was first seen longer ago than the routing ramp: it holds full trust.
    good = NodeId(write_node_key(tmp_path / "honest" / "node.key"))
    seen = services.clock.now() - timedelta(days=services.settings.routing.ramp_days + 1)
    async with services.database.session() as db, db.begin():
        db.add(Node(node_id=good, first_seen=seen, last_seen=seen, engine="llama.cpp",
                    models=[MODEL], hardware={}))
    tokens = []
    for _ in range(2):  # two operators
        _, session_token = await signed_in(coordinator)
        tokens.append((await mint(coordinator, session_token))["token"])
    honest = AgentProcess.llama(coordinator, gemma_path, tmp_path / "honest", slots=2,
                                extra=["--enrollment-token", tokens[0]])
    honest.node_id = good
    behaving = tmp_path / "behaving"
    behaving.touch()
    impostor = AgentProcess(coordinator, [
        sys.executable, str(REPO / "tests" / "support" / "impostor_agent.py"),
        "--coordinator", coordinator.base_url, "--weights", str(requantized_path),
        "--genuine", str(gemma_path), "--honest-while", str(behaving), "--slots", "2",
        "--enrollment-token", tokens[1],
    ], tmp_path / "impostor")
    client = await coordinator.client("consumer")
    served_after_catch: dict[str, int] = {}
    try:
        for agent in (honest, impostor):  # weights hashed and loaded on two busy cores
            await agent.start(wait=False)
            await agent.wait_registered(timeout=180)
        cheat = NodeId(impostor.node_id)
        router = services.router
        await wait_for(lambda: router.paid_eligible(good, MODEL)
                       and router.paid_eligible(cheat, MODEL), 180, "both nodes' exams")
        assert not any(node == cheat for node, _ in verdicts if not _), verdicts
        behaving.unlink()  # exam passed: from now on the cheat serves the substitute

        caught_at: float | None = None

        async def call(number: int) -> None:
            reply = await client.completions.with_raw_response.create(
                model=MODEL, prompt=PROMPTS[number % len(PROMPTS)], max_tokens=24,
                temperature=1.0 if number % 2 else 0.0,
            )
            assert reply.parse().choices[0].text
            if caught_at is not None:
                node = reply.headers[NODE_HEADER]
                served_after_catch[node] = served_after_catch.get(node, 0) + 1

        def reexamined() -> bool:
            return {(cheat, False), (good, False)} <= set(verdicts)

        number = 0
        deadline = time.monotonic() + 240
        while not reexamined():
            assert time.monotonic() < deadline, f"no disagreement: {sampler.counts}, {verdicts}"
            # A full network's worth of slots at a time, so the cheat gets its share.
            await asyncio.gather(*(call(number + n) for n in range(4)))
            number += 4
            await wait_for(lambda: reexamined() or sampler.counts.sampled == sum((
                sampler.counts.genuine, sampler.counts.substituted,
                sampler.counts.inconclusive, sampler.counts.unverified,
            )), 120, "the re-scoring queue to drain")
        caught_at = time.monotonic()
        assert sampler.counts.substituted >= 1
        assert not router.paid_eligible(cheat, MODEL)

        await wait_for(lambda: router.paid_eligible(good, MODEL), 120,
                       "the honest node to pass its re-exam")
        back_after = time.monotonic() - caught_at
        while served_after_catch.get(good, 0) < PAID_AFTER:
            await asyncio.gather(*(call(number + n) for n in range(2)))
            number += 2
        await wait_for(lambda: verdicts.count((cheat, False)) >= 2, 120,
                       "the cheat to fail its re-exam")
        print(f"honest node back on paid traffic {back_after:.1f} s after the disagreement; "
              f"re-scoring: {sampler.counts}; paid calls after it: {served_after_catch}")
        assert served_after_catch.get(cheat, 0) == 0, served_after_catch
        assert services.admission.state(good, MODEL) is ExamState.ADMITTED
        # The cheat fails its re-exam: quarantined still, or removed by now for its fake
        # fingerprint verdicts (it then sits no exam at all: it is gone).
        assert (services.admission.state(cheat, MODEL) is ExamState.QUARANTINED
                or services.hub.get(cheat) is None), services.admission.state(cheat, MODEL)
        # The honest node's answers were never judged fake: its re-exams came from its
        # disagreements with the cheat (one per paid answer of the cheat's it re-scored), and
        # none from the cheat's failed exam answers (a peer re-scores paid answers only).
        assert verdicts.count((good, False)) == sampler.counts.substituted, verdicts
    finally:
        await impostor.stop()
        await honest.stop()
        await coordinator.stop()
