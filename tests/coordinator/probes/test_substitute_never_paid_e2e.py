"""Issue 20's key test, all parts real, every integrity setting at its default: a coordinator, a
consumer calling through the official client from the moment the nodes join, and three real
agents on Gemma 3 270M (the fingerprinted model):

* an honest node enrolled to an operator's account: it passes its admission exam and serves;
* a substitute, Gemma re-quantized Q4_K_M -> Q4_0 claiming the genuine weights' sha256, enrolled
  too: it is quarantined at its first fake verdict and removed at its third, having served no
  paid request;
* an honest node nobody enrolled: it is probed (it even passes its exam) but never paid.

It prints how long the honest node took from connecting to its first paid job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import openai
import pytest
from support.cluster import REPO, AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, signed_in

from coordinator.gateway.chat import NODE_HEADER
from coordinator.hub.exam import ExamState
from coordinator.hub.observation import JobObservation
from protocol.ids import ModelId, NodeId

pytestmark = pytest.mark.slow

MODEL = ModelId("gemma-3-270m")
PAID_BY_HONEST = 6  # paid calls the honest node must serve before the test ends
EX_CONFIG = 78  # an agent's exit on a refusal for good


async def enrollment_token(coordinator: RunningCoordinator) -> str:
    _, session = await signed_in(coordinator)
    token: str = (await mint(coordinator, session))["token"]
    return token


async def test_a_substitute_serves_no_paid_request_an_honest_node_serves_after_its_exam(
    tmp_path: Path, gemma_path: Path, requantized_path: Path
) -> None:
    # The suite's helper switches probes, the exam and the enrollment requirement off for
    # scripted nodes; here all three are back at the coordinator's defaults.
    coordinator = await start_coordinator(
        tmp_path / "coordinator", probes={"enabled": True}, authenticity={}, identity={},
    )
    services = coordinator.services
    assert services.settings.probes.interval_s is None  # about one probe a minute
    assert services.settings.authenticity.exam_checks == 3
    assert services.settings.identity.paid_requires_enrollment
    paid: dict[NodeId, list[float]] = {}
    probed: dict[NodeId, int] = {}

    def observe(observation: JobObservation) -> None:
        if observation.probe:
            probed[observation.node_id] = probed.get(observation.node_id, 0) + 1
        else:
            paid.setdefault(observation.node_id, []).append(observation.finished_at)

    services.observers.append(observe)
    impostor = AgentProcess(coordinator, [
        sys.executable, str(REPO / "tests" / "support" / "impostor_agent.py"),
        "--coordinator", coordinator.base_url, "--claim", MODEL,
        "--weights", str(requantized_path),
        "--enrollment-token", await enrollment_token(coordinator),
    ], tmp_path / "impostor")
    honest = AgentProcess.llama(
        coordinator, gemma_path, tmp_path / "honest",
        extra=["--enrollment-token", await enrollment_token(coordinator)],
    )
    stranger = AgentProcess.llama(coordinator, gemma_path, tmp_path / "stranger")
    client = await coordinator.client("consumer")
    served: dict[str, int] = {}
    unanswered = 0
    try:
        for agent in (impostor, honest, stranger):
            await agent.start(wait=False)
        cheat, good, unenrolled = (
            NodeId(impostor.node_id), NodeId(honest.node_id), NodeId(stranger.node_id)
        )
        # Three engines loading on two shared cores: the substitute may be caught before the
        # others have joined.
        await honest.wait_registered(180)
        good_node = services.hub.get(good)
        assert good_node is not None
        connected_at = good_node.connected_at.timestamp()
        assert not services.router.paid_eligible(good, MODEL), "nothing passed yet"
        await stranger.wait_registered(180)

        async def admitted() -> float:
            await wait_for(lambda: services.router.paid_eligible(good, MODEL), 120,
                           "the honest node to pass its exam")
            return services.clock.now().timestamp() - connected_at

        exam = asyncio.create_task(admitted())

        async def call(number: int) -> None:
            nonlocal unanswered
            try:
                reply = await client.completions.with_raw_response.create(
                    model=MODEL, max_tokens=8, prompt=f"Guest number {number} walked in and",
                )
            except openai.APIStatusError as refused:  # no admitted node yet: try again
                assert refused.status_code == 503, refused
                unanswered += 1
                return
            assert reply.parse().choices[0].text
            node = reply.headers[NODE_HEADER]
            served[node] = served.get(node, 0) + 1

        number = 0
        while served.get(good, 0) < PAID_BY_HONEST:
            await asyncio.gather(call(number), call(number + 1))  # from the first second on
            number += 2
        first_paid = min(paid[good]) - connected_at
        admitted_after = await exam
        await wait_for(lambda: cheat in services.refused_nodes, 120,
                       "the substitute's removal at its third fake verdict")
        assert await impostor.wait_exit(30) == EX_CONFIG
        await wait_for(lambda: services.admission.state(unenrolled, MODEL) is ExamState.ADMITTED,
                       120, "the unenrolled node to pass its exam")
        for _ in range(3):  # more paid calls now that every node's exam is over
            await asyncio.gather(call(number), call(number + 1))
            number += 2
        print(f"honest node: connect to admission {admitted_after:.1f} s, to first paid job "
              f"{first_paid:.1f} s; paid calls served "
              f"{served}; refused while no node was admitted: {unanswered}; probes {probed}")

        assert served.get(cheat, 0) == 0 and cheat not in paid, served
        assert served.get(unenrolled, 0) == 0 and unenrolled not in paid, served
        assert probed.get(unenrolled, 0) >= 3, "unenrolled, it is still probed"
        assert not services.router.paid_eligible(unenrolled, MODEL)
        assert services.admission.state(good, MODEL) is ExamState.ADMITTED
        assert "removed from the network" in impostor.log_text()
    finally:
        for agent in (honest, impostor, stranger):
            await agent.stop()
        await coordinator.stop()
