"""The admission exam end to end: a real coordinator at its default probe and exam settings, a
real honest SmolLM2 agent and a real agent serving SmolLM2 re-quantized to Q4_0 while claiming
the genuine weights' sha256, and consumers calling through the official client from the moment
both have joined. The substitute serves no paid request; the honest node serves once it has passed
its exam."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from support.cluster import REPO, AgentProcess, start_coordinator, wait_for

from coordinator.gateway.chat import NODE_HEADER
from coordinator.hub.exam import ExamState
from protocol.ids import ModelId, NodeId

pytestmark = pytest.mark.slow

MODEL = ModelId("smollm2-135m-instruct")
PAID_BY_HONEST = 6  # calls the honest node must serve before the test ends


async def test_a_substitute_serves_no_paid_request_and_an_honest_node_serves_after_its_exam(
    tmp_path: Path, smollm2_path: Path, smollm2_requantized_path: Path
) -> None:
    # Default probe cadence, fingerprint share and exam size: only probes are switched on (the
    # suite's default is off) and the queue waits long enough for an exam on two shared cores.
    coordinator = await start_coordinator(
        tmp_path / "coordinator", probes={"enabled": True}, authenticity={}, queue_wait_s=120.0,
    )
    services = coordinator.services
    assert services.settings.authenticity.exam_checks == 3
    verdicts: list[tuple[NodeId, bool]] = []
    record = services.admission.verdict

    def spy(node_id: NodeId, model: ModelId, *, genuine: bool) -> None:
        verdicts.append((node_id, genuine))
        record(node_id, model, genuine=genuine)

    services.admission.verdict = spy  # type: ignore[method-assign]
    impostor = AgentProcess(coordinator, [
        sys.executable, str(REPO / "tests" / "support" / "impostor_agent.py"),
        "--coordinator", coordinator.base_url, "--claim", MODEL,
        "--weights", str(smollm2_requantized_path),
    ], tmp_path / "impostor")
    honest = AgentProcess.llama(coordinator, smollm2_path, tmp_path / "honest")
    client = await coordinator.client("consumer")
    served: dict[str, int] = {}
    try:
        await impostor.start()
        await honest.start()
        joined = time.monotonic()
        cheat, good = NodeId(impostor.node_id), NodeId(honest.node_id)
        # Neither has passed anything yet: both are held back from paid jobs.
        assert not services.router.paid_eligible(cheat, MODEL)
        assert not services.router.paid_eligible(good, MODEL)

        async def admitted() -> None:
            await wait_for(lambda: services.router.paid_eligible(good, MODEL), 120,
                           "the honest node to pass its exam")

        exam = asyncio.create_task(admitted())

        async def call(number: int) -> None:
            reply = await client.chat.completions.with_raw_response.create(
                model=MODEL, max_tokens=8,
                messages=[{"role": "user", "content": f"Say hello to guest number {number}."}],
            )
            assert reply.parse().choices[0].message.content
            node = reply.headers[NODE_HEADER]
            served[node] = served.get(node, 0) + 1

        number = 0
        while served.get(good, 0) < PAID_BY_HONEST:
            await asyncio.gather(call(number), call(number + 1))  # from the first second on
            number += 2
        await exam
        admitted_after = time.monotonic() - joined
        print(f"honest node admitted {admitted_after:.1f} s after joining; "
              f"paid calls served: {served}; verdicts: "
              f"honest {sum(1 for n, _ in verdicts if n == good)}, "
              f"substitute fake {sum(1 for n, g in verdicts if n == cheat and not g)}")

        assert served.get(cheat, 0) == 0, served
        assert services.admission.state(good, MODEL) is ExamState.ADMITTED
        assert services.admission.state(cheat, MODEL) is not ExamState.ADMITTED
        assert all(genuine for node, genuine in verdicts if node == good), verdicts
        # The substitute's answers are judged fake, not merely undecided: it is quarantined at the
        # first and removed from the network at the offender threshold.
        await wait_for(lambda: (cheat, False) in verdicts, 60, "a fake verdict on the substitute")
        await wait_for(lambda: cheat in services.refused_nodes, 120, "the substitute's removal")
    finally:
        await honest.stop()
        await impostor.stop()
        await coordinator.stop()
