"""Several real agents over simulated days: the board orders them as the rules say.

Four providers, one node each: a fast node always up (A), a fast node that goes offline for two
and a half days (C), a slow node (B), and a node that claims gemma-3-270m but serves another
model (D). The fingerprint check is played by a test source whose judge knows the scripted model's
answer (the authenticity checks supply the real one). Days pass on an injected clock, not by
sleeping: the scheduler probes every node for real each "day", then the clock jumps ahead.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from support.cluster import AgentProcess, RunningCoordinator, start_coordinator, wait_for
from support.enrollment import mint, new_wallet, signed_in

from coordinator.clock import ShiftedClock
from coordinator.hub.observation import JobObservation
from coordinator.points.keeper import PointsKeeper
from coordinator.probes.sources import ProbeDraw
from coordinator.routing import Outcome, RoutingConstants
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId, NodeId

SCRIPTED_ANSWER = "w0 w1 w2"


class Fingerprints:
    """Short probes; while ``budget`` lasts, judged ones that catch a node answering otherwise."""

    def __init__(self) -> None:
        self.budget = 0
        self.caught: Counter[NodeId] = Counter()

    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        messages = (ChatMessage(role="user", content="Count to twelve, please."),)
        params = SamplingParams(max_tokens=12, temperature=rng.choice((0.0, 0.7, 1.0)))
        if self.budget <= 0:
            return ProbeDraw(messages, params)
        return ProbeDraw(messages, params, judge=self._judge)

    def _judge(self, observation: JobObservation) -> bool:
        genuine = observation.text.startswith(SCRIPTED_ANSWER)
        if not genuine:
            self.caught[observation.node_id] += 1
            self.budget -= 1
        return genuine


async def enrolled(
    coordinator: RunningCoordinator, directory: Path, *args: str
) -> tuple[AgentProcess, str]:
    wallet = new_wallet()
    _, session = await signed_in(coordinator, wallet)
    token = (await mint(coordinator, session))["token"]
    agent = AgentProcess.scripted(coordinator, directory, "--enrollment-token", token, *args)
    await agent.start()
    return agent, wallet


async def get(coordinator: RunningCoordinator, path: str) -> Any:
    async with httpx.AsyncClient(base_url=coordinator.base_url) as http:
        response = await http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def test_leaderboard_orders_providers_by_the_rules_and_hides_the_cheater(
    tmp_path: Path, database_url: str
) -> None:
    clock = ShiftedClock()
    coordinator = await start_coordinator(
        tmp_path / "c", database_url=database_url, clock=clock,
        routing=RoutingConstants(ramp_start_fraction=1.0),
        probes={"enabled": True, "interval_s": 0.3, "tick_s": 0.05},
        node_clock_skew_s=30 * 86_400.0,  # agents sign with the real time; the coordinator's moves
    )
    services = coordinator.services
    keeper = services.points
    assert isinstance(keeper, PointsKeeper)
    fingerprints = Fingerprints()
    services.probe_sources.insert(0, fingerprints)
    passed: Counter[str] = Counter()
    services.observers.append(
        lambda o: passed.update([o.node_id]) if o.probe and o.outcome is Outcome.SUCCESS else None
    )
    agents: list[AgentProcess] = []
    try:
        fast, fast_wallet = await enrolled(coordinator, tmp_path / "fast", "--delay", "0.005")
        slow, slow_wallet = await enrolled(coordinator, tmp_path / "slow", "--delay", "0.1")
        away, away_wallet = await enrolled(coordinator, tmp_path / "away", "--delay", "0.005")
        cheat, cheat_wallet = await enrolled(
            coordinator, tmp_path / "cheat", "--delay", "0.005", "--word-prefix", "x"
        )
        agents = [fast, slow, away, cheat]

        async def probe_round(nodes: list[AgentProcess], rounds: int = 3) -> None:
            start = {agent.node_id: passed[agent.node_id] for agent in nodes}
            await wait_for(
                lambda: all(passed[a.node_id] >= start[a.node_id] + rounds for a in nodes),
                120, "every node to pass a few probes",
            )

        # Day 1: everyone is probed; one fingerprint check catches the cheater.
        await probe_round(agents)
        fingerprints.budget = 1
        await wait_for(lambda: fingerprints.caught[NodeId(cheat.node_id)] == 1, 60, "a catch")
        assert sum(fingerprints.caught.values()) == 1, "honest nodes pass the fingerprint"
        await keeper.refresh()
        board = await get(coordinator, "/v1/leaderboard")
        assert [row["provider"] for row in board["data"]][-1] == cheat_wallet
        assert board["data"][-1]["points"] == 0.0, "penalised below zero, floored on the board"
        penalised = await get(coordinator, f"/v1/providers/{cheat_wallet}")
        [cheat_day] = penalised["nodes"][0]["days"]
        assert cheat_day["terms"]["fake_verdicts"] == 1 and cheat_day["terms"]["collapsed"]
        assert cheat_day["score"] < 0 and not penalised["hidden"]

        # The away node drops out for two and a half days while the others stay up.
        await away.stop()
        await wait_for(lambda: services.hub.get(NodeId(away.node_id)) is None, 30, "away gone")
        clock.advance(timedelta(days=2.5))
        await keeper.refresh()
        await away.start()
        await probe_round(agents)

        # Two more catches within the offender window remove the cheater for good.
        fingerprints.budget = 2
        await wait_for(lambda: fingerprints.caught[NodeId(cheat.node_id)] == 3, 60, "catches")
        await keeper.refresh()
        assert NodeId(cheat.node_id) in services.refused_nodes
        assert await cheat.wait_exit(30) == 78, "disconnected as a fatal refusal"
        assert "removed from the network" in cheat.log_text()
        await cheat.start(wait=False)
        assert await cheat.wait_exit(30) == 78, "refused when it comes back"
        assert cheat.log_text().count("removed from the network") == 2

        # Another day for the rest.
        clock.advance(timedelta(days=1))
        await keeper.refresh()
        await probe_round([fast, slow, away])
        await keeper.refresh()

        board = await get(coordinator, "/v1/leaderboard")
        order = [row["provider"] for row in board["data"]]
        assert order == [fast_wallet, away_wallet, slow_wallet], (
            "fast and always up, then fast but away 2.5 days, then slow; the cheater hidden"
        )
        rows = {row["provider"]: row for row in board["data"]}
        assert rows[fast_wallet]["tok_s"] > 3 * rows[slow_wallet]["tok_s"]
        hidden = await get(coordinator, f"/v1/providers/{cheat_wallet}")
        assert hidden["hidden"] and hidden["nodes"][0]["removed"]
        away_days = {d["day"]: d["terms"] for d in
                     (await get(coordinator, f"/v1/providers/{away_wallet}"))["nodes"][0]["days"]}
        fast_days = {d["day"]: d["terms"] for d in
                     (await get(coordinator, f"/v1/providers/{fast_wallet}"))["nodes"][0]["days"]}
        assert sum(t["online_s"] for t in away_days.values()) < (
            sum(t["online_s"] for t in fast_days.values()) - 2 * 86_400
        ), "two and a half days offline shows in its online time"
        assert all(t["trust"] > 0.1 for day, t in fast_days.items() if day != min(fast_days))
    finally:
        for agent in agents:
            await agent.stop()
        await coordinator.stop()
