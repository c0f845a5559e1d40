"""The probe scheduler's pure decisions: who is due, jitter, capacity, sources, job shape."""

from __future__ import annotations

import itertools
import random
import re

from hypothesis import given
from hypothesis import strategies as st

from coordinator.probes.prompts import PromptPool, realistic_messages, realistic_params
from coordinator.probes.scheduler import (
    ProbeSchedule,
    draw_probe,
    first_probe_at,
    may_probe,
    next_probe_at,
    probe_job,
)
from coordinator.probes.sources import ProbeDraw
from coordinator.routing import (
    BreakerState,
    NodeInfo,
    NodeSnapshot,
    Outcome,
    Router,
    RoutingConstants,
)
from protocol.chat import ChatMessage, SamplingParams
from protocol.ids import ModelId, NodeId
from protocol.messages import Job

MODEL = ModelId("gemma-3-270m")


def snapshot(**changes: object) -> NodeSnapshot:
    values: dict[str, object] = dict(
        node_id=NodeId("n"), models=frozenset({MODEL}), live=True, draining=False, slots=2,
        admitted_capacity=2, in_flight=0, spare_capacity=1.0,
        breaker_state=BreakerState.CLOSED, park_until=None, health_score=0.5,
        declared_tok_s=None, measured_tok_s=None, candidate=True,
    )
    values.update(changes)
    return NodeSnapshot(**values)  # type: ignore[arg-type]


@given(st.floats(0, 1e6), st.floats(1, 600), st.floats(0, 0.99), st.integers(0, 2**32))
def test_next_probe_stays_within_the_jittered_interval(
    now: float, interval: float, jitter: float, seed: int
) -> None:
    at = next_probe_at(now, interval, jitter, random.Random(seed))
    assert now + interval * (1 - jitter) - 1e-6 <= at <= now + interval * (1 + jitter) + 1e-6
    first = first_probe_at(now, interval, random.Random(seed))
    assert now <= first <= now + interval


def test_every_node_is_probed_about_once_an_interval_at_irregular_times() -> None:
    schedule, rng = ProbeSchedule(interval_s=60.0, jitter=0.5), random.Random(7)
    nodes = [NodeId(f"n{i}") for i in range(20)]
    probed: dict[NodeId, list[float]] = {node: [] for node in nodes}
    for second in range(0, 3600):
        for node in schedule.due(nodes, float(second), rng):
            probed[node].append(float(second))
    for times in probed.values():
        assert 50 <= len(times) <= 75  # ~60 in an hour
        gaps = {round(b - a) for a, b in itertools.pairwise(times)}
        assert len(gaps) > 10, "no fixed beat a node could learn"
        assert all(29 <= gap <= 91 for gap in gaps)


def test_nodes_that_leave_are_forgotten_and_new_ones_wait_for_their_first_turn() -> None:
    schedule, rng = ProbeSchedule(interval_s=60.0, jitter=0.5), random.Random(1)
    a, b = NodeId("a"), NodeId("b")
    assert schedule.due([a], 0.0, rng) == []  # scheduled, not probed on sight
    assert schedule.next_due(a) is not None
    schedule.due([b], 1.0, rng)
    assert schedule.next_due(a) is None and schedule.next_due(b) is not None


def test_probes_take_only_spare_slots_and_never_delay_waiting_requests() -> None:
    assert may_probe(snapshot(), {})
    assert may_probe(snapshot(candidate=False), {}), "below the floor: probes re-measure it"
    assert not may_probe(snapshot(spare_capacity=0.0, in_flight=2), {})
    assert not may_probe(snapshot(draining=True), {})
    assert not may_probe(snapshot(live=False), {})
    assert not may_probe(snapshot(), {MODEL: 1}), "a paid request is waiting for this model"
    assert may_probe(snapshot(), {ModelId("other"): 3, MODEL: 0})


class Fixed:
    def __init__(self, draw: ProbeDraw | None) -> None:
        self.result = draw
        self.asked = 0

    def draw(self, model: ModelId, rng: random.Random) -> ProbeDraw | None:
        self.asked += 1
        return self.result


def test_sources_are_asked_in_order_and_the_first_answer_wins() -> None:
    rng = random.Random(0)
    fingerprint = ProbeDraw(
        (ChatMessage(role="user", content="fingerprint"),), SamplingParams(max_tokens=16),
        judge=lambda observation: True,
    )
    silent, chosen, never = Fixed(None), Fixed(fingerprint), Fixed(None)
    assert draw_probe([silent, chosen, never], MODEL, rng) is fingerprint
    assert (silent.asked, chosen.asked, never.asked) == (1, 1, 0)
    assert draw_probe([silent], MODEL, rng) is None
    assert draw_probe([silent, PromptPool()], MODEL, rng) is not None


def test_the_prompt_pool_is_varied_like_consumer_traffic() -> None:
    rng = random.Random(3)
    draws = [PromptPool().draw(MODEL, rng) for _ in range(500)]
    assert all(draw is not None and draw.judge is None for draw in draws)
    prompts = {d.messages[-1].content for d in draws if d is not None}
    params = [d.params for d in draws if d is not None]
    assert len(prompts) >= 30
    assert len({p.temperature for p in params}) >= 4
    assert len({p.max_tokens for p in params}) >= 4
    assert any(d.messages[0].role == "system" for d in draws if d is not None)
    assert any(len(d.messages) >= 3 for d in draws if d is not None), "follow-up turns too"
    assert any(p.seed is not None for p in params) and any(p.seed is None for p in params)
    assert realistic_messages(random.Random(9)) == realistic_messages(random.Random(9))
    assert realistic_params(random.Random(9)) == realistic_params(random.Random(9))


def test_a_probe_job_has_the_shape_of_a_consumers_first_attempt() -> None:
    draw = PromptPool().draw(MODEL, random.Random(5))
    assert draw is not None
    job = probe_job(MODEL, draw, top_logprobs=5)
    assert isinstance(job, Job)
    assert re.fullmatch(r"job-[0-9a-f]{16}-\d+", job.job_id)
    assert job.top_logprobs == 5 and job.continuation == ""
    assert job.messages == draw.messages and job.params == draw.params
    # Every field a consumer's chat job carries; fill_context, tools and raw_prompt are left out
    # of the frame when unused, as in a consumer's plain chat that sets max_tokens.
    fields = set(Job.model_fields) - {"fill_context", "tools", "raw_prompt"}
    assert set(job.model_dump(exclude_unset=False)) == fields


def test_a_probe_frees_its_slot_and_only_its_verdict_reaches_the_health_window() -> None:
    router = Router(RoutingConstants(ramp_start_fraction=1.0))
    node = NodeId("n")
    router.upsert_node(
        NodeInfo(node_id=node, models=frozenset({MODEL}), slots=1, declared_tok_s=None,
                 first_seen=0.0),
        now=0.0, wall_now=1000.0,
    )
    router.job_started(node, now=1.0)
    router.job_finished(node, Outcome.SUCCESS, now=2.0, wall_now=1002.0, probe=True)
    assert router.snapshot(node, now=2.0).in_flight == 0
    assert sum(b.successes + b.probe_successes for b in router.health_buckets(node,
               wall_now=1002.0)) == 0, "the judge has not spoken yet"
    router.record_probe(node, Outcome.FAILURE, now=2.0, wall_now=1002.0)
    [bucket] = router.health_buckets(node, wall_now=1002.0)
    assert (bucket.probe_failures, bucket.failures, bucket.successes) == (1, 0, 0)
