"""Whether substitute models serve paid traffic, on a network played in simulated time.

Run from the repository root: ``python bench/integrity.py [--quick] [--fresh]`` (quick: 30
honest nodes, 6 substitutes, 2 honest-on-probes-only nodes, 3 simulated hours, answers to two
prompts recorded; ``--fresh`` records the answers again instead of reading the cache).

Real: the routing (:class:`coordinator.routing.Router`: least-loaded choice, ramp-up, health),
the probe schedule and its pure decisions (``ProbeSchedule.due``, ``may_probe``,
``may_examine``, ``draw_probe`` over the fingerprint source and the prompt pool, in the app's
order), the fingerprint judge (``FingerprintSource``'s judge, i.e. ``plausibility.compare``
against the reference run), the admission exam and quarantine
(:class:`coordinator.hub.admission.Admission`), removal at the offender threshold
(``points.day.removal_day``, as the keeper applies it to each fake verdict), the enrollment limits
(``accounts.identity.enrollment_refusal``), the re-scoring comparison (``compare``) and its peer
rule (``rescoring.may_verify_as_peer``), at the default constants. The answers are the real
models' (``bench/integrity_answers.py``), recorded once and replayed.

Simulated: time (one-second ticks, as the scheduler's ``tick_s``; no sleeping); the nodes (a
job takes its tokens over the node's speed; a fingerprint probe is answered with the recorded
answer of the node's kind to that prompt, a paid job's re-scoring replays a recorded answer and
its recorded scoring); paid traffic (Poisson arrivals, a day-night swing, completion lengths from
the probe pool's consumer spread); the I/O loops around the decisions (ProbeScheduler.tick and
_record, RescoringSampler.check, the keeper's record_fake, registration), whose few lines of
glue are re-played here where marked. Cheaters are worst cases: they tell probes from paid jobs
(honest-on-probes-only nodes answer every probe genuinely) and know their own fake-verdict count.
Left out: every sampled paid job is re-scored at once (the real sampler checks one at a time and
drops samples past a queue of 64); a cheater opens no second operator account (one machine, one
account, its limits); long-standing nodes are fully trusted peers from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import heapq
import math
import random
import statistics
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Literal

import harness  # the repository on the path
import numpy as np
from integrity_answers import SUBSTITUTES, TOP_LOGPROBS, Recording, load_or_record

from coordinator.accounts.identity import EnrollmentLimits, enrollment_refusal
from coordinator.hub.admission import Admission
from coordinator.hub.observation import JobObservation
from coordinator.points.day import removal_day
from coordinator.probes.fingerprints import FingerprintSource
from coordinator.probes.plausibility import compare
from coordinator.probes.prompts import PromptPool, realistic_params
from coordinator.probes.rescoring_rules import (
    Candidate,
    Disputes,
    may_verify,
    rescore_chance,
    ruling,
)
from coordinator.probes.scheduler import (
    ProbeSchedule,
    draw_probe,
    may_examine,
    may_probe,
    probe_job,
)
from coordinator.probes.sources import ProbeDraw, ProbeSource
from coordinator.routing import HealthBucket, NodeInfo, Outcome, Router
from coordinator.routing.health import bucket_start
from coordinator.settings.authenticity import AuthenticitySettings
from coordinator.settings.identity import IdentitySettings
from coordinator.settings.points_constants import PointsConstants
from coordinator.settings.probes import ProbeSettings
from protocol.ids import ModelId, NodeId
from protocol.messages import ModelOffer

MODEL = ModelId("gemma-3-270m")
DAY = 86_400.0
WALL0 = 1_780_000_000.0
TARGET_SHARE = 0.001
RESTART_S = 2 * 3600.0  # an honest machine restarts (sleep, updates) and sits its exam again
Role = Literal["honest", "substitute", "probes-only"]


@dataclass
class Machine:
    """One computer behind one operator account; a cheater's may take a new key after another."""

    name: str
    role: Role
    operator: str
    probe_kind: str  # the recorded kind that answers its probes
    paid_kind: str  # the recorded kind that answers its paid jobs
    slots: int
    tok_s: float
    walks_away: bool = False  # leaves one fake verdict short of removal, for a new key
    node_id: NodeId | None = None
    serial: int = 0


@dataclass
class Identity:
    """One connection of a node key (a cheater's key connects once): what it served and when
    it was caught."""

    node_id: NodeId
    machine: Machine
    connected_at: float
    fingerprint_checks: int = 0  # fingerprint probes answered, decided or not
    first_fake_check: int | None = None
    first_fake_at: float | None = None
    fakes: list[float] = field(default_factory=list)
    paid_tokens: int = 0
    paid_answers: int = 0  # paid jobs answered (probation re-scores the first ones)
    ended: str = "connected at the end"


@dataclass
class Tally:
    paid_tokens: Counter[Role] = field(default_factory=Counter)
    unserved: int = 0
    honest_exams: int = 0  # exams sat by honest nodes (each connection, each re-exam)
    honest_reexams: int = 0  # of which sat after a peer disagreement
    honest_exam_checks: int = 0  # fingerprint verdicts on honest nodes while sitting one
    honest_verdicts: int = 0  # every fingerprint verdict on an honest node
    honest_quarantined: int = 0  # by a fake verdict on their own answer
    disagreements: Counter[Role] = field(default_factory=Counter)  # re-scoring, by peers
    corroborated: Counter[Role] = field(default_factory=Counter)  # disputes made verdicts
    rescored: int = 0
    unverified: int = 0


@dataclass(frozen=True)
class Scenario:
    honest: int
    substitutes: int
    probes_only: int
    hours: float
    load: float  # mean share of the honest nodes' slots busy with paid jobs
    exam: bool = True  # False: the control, as before the admission exam and quarantine


FULL = Scenario(honest=100, substitutes=10, probes_only=5, hours=24.0, load=0.5)
QUICK = Scenario(honest=30, substitutes=6, probes_only=2, hours=3.0, load=0.5)


class Network:
    """The coordinator's decisions over simulated machines, one second at a time."""

    def __init__(self, scenario: Scenario, recording: Recording, seed: int) -> None:
        self.scenario = scenario
        self.recording = recording
        self.rng = random.Random(seed)
        self.draws = np.random.default_rng(seed)
        self.authenticity = AuthenticitySettings()
        self.points = PointsConstants()
        self.identity = IdentitySettings()
        self.limits = EnrollmentLimits(
            new_nodes_per_day=self.identity.new_nodes_per_day_per_operator,
            offender_window=timedelta(days=self.points.offender_window_days),
        )
        self.router = Router()
        self.fingerprints = FingerprintSource(
            {MODEL: recording.fingerprint}, self.authenticity.tolerances,
            share=self.authenticity.fingerprint_share,
        )
        # The app's order: the fingerprint source first, the realistic pool for the rest.
        self.sources: list[ProbeSource] = [self.fingerprints, PromptPool()]
        self.admission = Admission(
            self.router, self.authenticity.exam_checks if scenario.exam else 0,
            lambda model: model == MODEL,
            enrollment_required=self.identity.paid_requires_enrollment,
        )
        probes = ProbeSettings()
        self.schedule = ProbeSchedule(self.points.probe_interval_s, probes.jitter)
        self.prompt_index = {p: i for i, p in enumerate(recording.prompts)}
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.serial = 0
        self.live: dict[NodeId, Identity] = {}
        self.identities: list[Identity] = []
        self.examining: set[NodeId] = set()  # an exam probe in flight
        self.sitting: set[NodeId] = set()  # checks due (the scheduler asks Admission.due)
        self.enrolled_at: dict[str, deque[float]] = {}
        self.removed_at: dict[str, float] = {}
        self.fully_trusted: set[NodeId] = set()
        self.removed_ids: set[NodeId] = set()
        self.disputes = Disputes(
            self.authenticity.peer_corroboration, self.authenticity.peer_dispute_window_s
        )
        self.tally = Tally()
        spread = random.Random(seed)  # drawn once: pydantic-validated params are slow to draw
        self.lengths = [
            max(1, int(realistic_params(spread).max_tokens * spread.uniform(0.3, 1.0)))
            for _ in range(4_096)
        ]
        self.verdicts: dict[tuple[str, str], bool | None] = {}
        self.machines = self.build_machines()
        self.mean_rate = scenario.load * sum(
            m.slots for m in self.machines if m.role == "honest"
        ) / self.mean_paid_seconds()

    # --- the machines ---------------------------------------------------------------------------

    def build_machines(self) -> list[Machine]:
        s, rng = self.scenario, self.rng
        honest = self.recording.honest_kinds()
        machines = [
            Machine(f"honest-{i}", "honest", f"op-h{i // 2}", honest[i % len(honest)],
                    honest[i % len(honest)], rng.choice((1, 2, 4)), rng.choice((40.0, 80.0, 150.0)))
            for i in range(s.honest)
        ]
        machines += [
            Machine(f"sub-{i}", "substitute", f"op-s{i}", SUBSTITUTES[i % 3], SUBSTITUTES[i % 3],
                    rng.choice((1, 2, 4)), rng.choice((40.0, 80.0, 150.0)), walks_away=i % 2 == 0)
            for i in range(s.substitutes)
        ]
        machines += [
            Machine(f"probes-only-{i}", "probes-only", f"op-p{i}", honest[0], SUBSTITUTES[i % 3],
                    rng.choice((2, 4)), rng.choice((80.0, 150.0)))
            for i in range(s.probes_only)
        ]
        return machines

    def mean_paid_seconds(self) -> float:
        honest = [m for m in self.machines if m.role == "honest"]
        draw = random.Random(1)
        return statistics.fmean(
            self.paid_tokens(draw) / draw.choice(honest).tok_s for _ in range(20_000)
        )

    def paid_tokens(self, rng: random.Random) -> int:
        """A paid completion's length: its budget from the consumer spread, mostly filled."""
        return rng.choice(self.lengths)

    # --- connecting and leaving -----------------------------------------------------------------

    def connect(self, machine: Machine) -> None:
        """Registration: a long-standing machine comes back with its key; a cheater comes with
        a new key, enrolled to its operator if the limits allow one now, else it tries again
        ten minutes later."""
        # A removed key is refused at registration (node_removals): its machine needs a new one.
        long_standing = machine.role != "substitute" and machine.node_id not in self.removed_ids
        if not long_standing and not self.new_key(machine):
            self.at(self.now + 600.0, partial(self.connect, machine))
            return
        if machine.node_id is None:
            machine.node_id = NodeId(machine.name)
        node_id = machine.node_id
        wall = WALL0 + self.now
        history: tuple[HealthBucket, ...] = ()
        first_seen = wall
        if long_standing:  # a month on the network, a clean health window, full trust
            first_seen = WALL0 - 30 * DAY
            history = (HealthBucket(bucket_start(wall - DAY), successes=2_000, failures=5),)
            self.fully_trusted.add(node_id)
        identity = Identity(node_id, machine, self.now)
        self.live[node_id] = identity
        self.identities.append(identity)
        # As hub/connect.py does: the exam first, then the router may choose it.
        self.admission.joined(node_id, (self.offer(),), enrolled=True)
        self.router.upsert_node(
            NodeInfo(node_id=node_id, models=frozenset({MODEL}), slots=machine.slots,
                     declared_tok_s=machine.tok_s, first_seen=first_seen),
            now=self.now, wall_now=wall, health=history,
        )
        if machine.role == "honest" and self.scenario.exam:
            self.tally.honest_exams += 1
        self.update_sitting(node_id)

    def new_key(self, machine: Machine) -> bool:
        """A cheater's next key, if its operator may enroll one more node now."""
        if self.enrollment_refusal(machine.operator) is not None:
            return False
        machine.serial += 1
        machine.node_id = NodeId(f"{machine.name}-key{machine.serial}")
        self.enrolled_at.setdefault(machine.operator, deque()).append(self.now)
        return True

    def offer(self) -> ModelOffer:
        return ModelOffer(model=MODEL, weights_sha256=self.recording.fingerprint.weights_sha256,
                          context_length=2048)

    def enrollment_refusal(self, operator: str) -> str | None:
        enrolled = self.enrolled_at.setdefault(operator, deque())
        while enrolled and enrolled[0] <= self.now - DAY:
            enrolled.popleft()
        removed = self.removed_at.get(operator)
        window_s = self.limits.offender_window.total_seconds()
        recently = removed is not None and self.now - removed < window_s
        return enrollment_refusal(len(enrolled), recently, self.limits)

    def disconnect(self, identity: Identity, why: str) -> None:
        """The node leaves (its jobs in flight still end and count: a real one's would fail,
        a few seconds of tokens either way)."""
        node_id = identity.node_id
        if self.live.pop(node_id, None) is None:
            return
        identity.ended = why
        self.router.remove_node(node_id)
        self.admission.left(node_id)
        self.sitting.discard(node_id)

    def restart(self, machine: Machine) -> None:
        """An honest machine restarts (an update, a reboot): back after a few minutes, same key,
        so it sits its exam again."""
        identity = self.live.get(machine.node_id) if machine.node_id else None
        if identity is not None:
            self.disconnect(identity, "restarted")
            self.at(self.now + self.rng.uniform(30.0, 300.0), lambda: self.connect(machine))
        self.at(self.now + self.rng.expovariate(1 / RESTART_S), lambda: self.restart(machine))

    # --- jobs -----------------------------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.serial += 1
        heapq.heappush(self.events, (when, self.serial, action))

    def start_paid(self) -> None:
        node_id = self.router.choose(MODEL, now=self.now, rng=self.rng)
        if node_id is None:
            self.tally.unserved += 1  # a real request waits; here it is counted and dropped
            return
        identity = self.live[node_id]
        self.router.job_started(node_id, now=self.now)
        tokens = self.paid_tokens(self.rng)
        self.at(self.now + tokens / identity.machine.tok_s + 0.2,
                lambda: self.end_paid(identity, tokens))

    def end_paid(self, identity: Identity, tokens: int) -> None:
        self.router.job_finished(identity.node_id, Outcome.SUCCESS, now=self.now,
                                 wall_now=WALL0 + self.now)
        identity.paid_tokens += tokens
        self.tally.paid_tokens[identity.machine.role] += tokens
        identity.paid_answers += 1
        if self.rng.random() < rescore_chance(identity.paid_answers - 1, self.authenticity):
            self.rescore(identity)

    def start_probe(self, node_id: NodeId, draw: ProbeDraw, exam: bool) -> None:
        """As ProbeScheduler.start_probe / start_exam: take a slot, send the job."""
        identity = self.live[node_id]
        self.router.job_started(node_id, now=self.now)
        if exam:
            self.examining.add(node_id)
        tokens = self.recording.fingerprint.answers[0].params.max_tokens if draw.judge else min(
            draw.params.max_tokens, self.paid_tokens(self.rng))
        self.at(self.now + tokens / identity.machine.tok_s + 0.2,
                lambda: self.end_probe(identity, draw, exam))

    def end_probe(self, identity: Identity, draw: ProbeDraw, exam: bool) -> None:
        node_id = identity.node_id
        self.examining.discard(node_id)
        self.router.job_finished(node_id, Outcome.SUCCESS, now=self.now,
                                 wall_now=WALL0 + self.now, probe=True)
        if node_id not in self.live:
            return  # it left meanwhile: the probe ends neutral
        if draw.judge is None:
            genuine = None
        else:
            identity.fingerprint_checks += 1
            genuine = self.judge(identity, draw)
        # As ProbeScheduler._probe and _record: an undecided judge passes with no verdict.
        self.router.record_probe(
            node_id, Outcome.FAILURE if genuine is False else Outcome.SUCCESS,
            now=self.now, wall_now=WALL0 + self.now,
        )
        if genuine is None:
            return
        self.fingerprint_verdict(identity, genuine)

    def judge(self, identity: Identity, draw: ProbeDraw) -> bool | None:
        """The fingerprint judge's verdict on the node's answer. A recorded answer always gets
        the same verdict, so the real judge rules once per (kind, prompt) and is replayed."""
        assert draw.judge is not None
        key = (identity.machine.probe_kind, draw.messages[-1].content)
        if key not in self.verdicts:
            self.verdicts[key] = draw.judge(self.observe(identity, draw))
        return self.verdicts[key]

    def observe(self, identity: Identity, draw: ProbeDraw) -> JobObservation:
        """What the coordinator sees of the node's answer: its recorded answer to that prompt."""
        prompt = self.prompt_index[draw.messages[-1].content]
        answer = self.recording.answers[identity.machine.probe_kind][prompt]
        job = probe_job(MODEL, draw, TOP_LOGPROBS)
        return JobObservation(
            node_id=identity.node_id, job=job, probe=True, outcome=Outcome.SUCCESS,
            text="".join(lp.token for lp in answer), logprobs=answer, tokens=len(answer),
            tok_s=identity.machine.tok_s, finished_at=WALL0 + self.now,
        )

    # --- verdicts -------------------------------------------------------------------------------

    def fingerprint_verdict(self, identity: Identity, genuine: bool) -> None:
        node_id, role = identity.node_id, identity.machine.role
        if role == "honest":
            self.tally.honest_verdicts += 1
            if node_id in self.sitting:
                self.tally.honest_exam_checks += 1
            if not genuine:
                self.tally.honest_quarantined += 1
        self.admission.verdict(node_id, MODEL, genuine=genuine)
        self.update_sitting(node_id)
        if genuine:
            return
        if identity.first_fake_check is None:
            identity.first_fake_check = identity.fingerprint_checks
            identity.first_fake_at = self.now - identity.connected_at
        self.record_fake(identity)

    def record_fake(self, identity: Identity) -> None:
        """As PointsKeeper.record_fake: stored at once, removal at the offender threshold."""
        wall = WALL0 + self.now
        identity.fakes.append(wall)
        window_s = self.points.offender_window_days * DAY
        recent = [t for t in identity.fakes if t >= wall - window_s]
        machine = identity.machine
        if removal_day(recent, self.points) is not None:
            self.disconnect(identity, "removed")
            self.removed_ids.add(identity.node_id)
            self.removed_at[machine.operator] = self.now
            self.at(self.now + 10.0, lambda: self.connect(machine))
        elif machine.walks_away and len(recent) >= self.points.offender_fake_verdicts - 1:
            self.disconnect(identity, "walked away")  # before removal bars its operator
            self.at(self.now + 10.0, lambda: self.connect(machine))

    def rescore(self, checked: Identity) -> None:
        """As RescoringSampler.check without configured trusted nodes: a peer of another
        operator scores a sampled paid job; disagreement sends both to a re-exam at once."""
        self.tally.rescored += 1
        verifier = self.peer_for(checked)
        if verifier is None:
            self.tally.unverified += 1
            return
        prompt = self.rng.randrange(len(self.recording.prompts))
        genuine = self.rescored(checked.machine.paid_kind, prompt)
        corroborated = genuine is False and self.disputes.dispute(
            checked.node_id, hash(verifier.machine.operator), WALL0 + self.now
        )
        decided = ruling(
            genuine, checked.node_id, verifier.node_id, platform=False, corroborated=corroborated
        )
        for identity in (checked, verifier):
            if identity.node_id not in decided.reexamine:
                continue
            self.tally.disagreements[identity.machine.role] += 1
            if identity.machine.role == "honest" and self.scenario.exam:
                self.tally.honest_exams += 1
                self.tally.honest_reexams += 1
            self.admission.verdict(identity.node_id, MODEL, genuine=False)
            self.update_sitting(identity.node_id)
        if decided.verdict is False:  # corroborated by peers of two operators: as the keeper
            self.tally.corroborated[checked.machine.role] += 1
            if checked.machine.role == "honest":
                self.tally.honest_quarantined += 1
            self.record_fake(checked)

    @functools.cache  # noqa: B019 (one network per run) a recorded answer, one verdict
    def rescored(self, kind: str, prompt: int) -> bool | None:
        """The re-scoring comparison of a recorded paid answer with its recorded scoring."""
        claimed = self.recording.answers[kind][prompt][:self.authenticity.rescore_max_tokens]
        reference = self.recording.scored[kind][prompt]
        return compare(claimed, reference, self.authenticity.tolerances).genuine

    def peer_for(self, checked: Identity) -> Identity | None:
        """A uniform draw among the nodes that may verify ``checked``: most live nodes may, so
        drawing until one does is cheaper than listing them all."""
        live = list(self.live.values())
        for _ in range(64):
            peer = self.rng.choice(live)
            if peer is not checked and self.may_verify(peer, checked):
                return peer
        peers = [p for p in live if p is not checked and self.may_verify(p, checked)]
        return self.rng.choice(peers) if peers else None

    def may_verify(self, peer: Identity, checked: Identity) -> bool:
        """The real peer rule on what the coordinator knows of the peer."""
        return may_verify(Candidate(
            node_id=peer.node_id, operator=hash(peer.machine.operator),
            admitted=self.admission.paid_allowed(peer.node_id, MODEL),
            trust=1.0 if peer.node_id in self.fully_trusted else 0.0, scores=True,
        ), checked.node_id, hash(checked.machine.operator))

    def update_sitting(self, node_id: NodeId) -> None:
        if node_id in self.live and self.admission.due(node_id, [MODEL]):
            self.sitting.add(node_id)
        else:
            self.sitting.discard(node_id)

    # --- the clock --------------------------------------------------------------------------------

    def tick(self) -> None:
        """One second: jobs end, paid requests arrive, the probe scheduler's tick runs."""
        while self.events and self.events[0][0] <= self.now:
            _, _, action = heapq.heappop(self.events)
            action()
        swing = 1.0 + 0.4 * math.sin(2 * math.pi * self.now / DAY)
        arrivals = int(self.draws.poisson(self.mean_rate * swing))
        unserved_before = self.tally.unserved
        for _ in range(arrivals):
            self.start_paid()
        waiting = {MODEL: self.tally.unserved - unserved_before}
        # ProbeScheduler.tick's decisions: the due nodes, each if it holds up no paid request.
        for node_id in self.schedule.due(list(self.live), self.now, self.rng):
            if may_probe(self.router.snapshot(node_id, now=self.now), waiting):
                draw = draw_probe(self.sources, MODEL, self.rng)
                if draw is not None:
                    self.start_probe(node_id, draw, exam=False)
        for node_id in sorted(self.sitting - self.examining):  # ProbeScheduler.start_exam
            if may_examine(self.router.snapshot(node_id, now=self.now)):
                draw = self.fingerprints.exam_draw(MODEL, self.rng)
                if draw is not None:
                    self.start_probe(node_id, draw, exam=True)
        if int(self.now) % 300 == 0:  # the coordinator's periodic refresh: ramp-up, health
            self.router.refresh(now=self.now, wall_now=WALL0 + self.now)

    def run(self) -> None:
        for machine in self.machines:
            self.at(self.rng.uniform(0.0, 60.0), partial(self.connect, machine))
            if machine.role == "honest":
                self.at(self.rng.expovariate(1 / RESTART_S), partial(self.restart, machine))
        end = self.scenario.hours * 3600.0
        while self.now < end:
            self.tick()
            self.now += 1.0


# --- the report -----------------------------------------------------------------------------------


def substitute_share(tally: Tally) -> float:
    total = sum(tally.paid_tokens.values())
    cheated = tally.paid_tokens["substitute"] + tally.paid_tokens["probes-only"]
    return cheated / total if total else 0.0


def describe(network: Network, label: str) -> None:
    tally, s = network.tally, network.scenario
    total = sum(tally.paid_tokens.values())
    print(f"\n{label}: {s.honest} honest, {s.substitutes} substitute and {s.probes_only} "
          f"honest-on-probes-only nodes, {s.hours:g} h, {network.mean_rate:.1f} paid requests/s "
          f"on average (mean load {s.load:.0%} of honest slots, ±40% day and night)")
    print(f"  paid tokens: {total:,}; unserved requests: {tally.unserved:,}")
    for role in ("honest", "substitute", "probes-only"):
        share = tally.paid_tokens[role] / total if total else 0.0
        print(f"    {role:12} {tally.paid_tokens[role]:>14,}  {share:8.4%}")
    print(f"  substitute share of paid tokens (substitutes + probes-only): "
          f"{substitute_share(tally):.4%} (goal <= {TARGET_SHARE:.1%})")
    subs = [i for i in network.identities if i.machine.role == "substitute"]
    checks = [i.first_fake_check for i in subs if i.first_fake_check is not None]
    seconds = [i.first_fake_at for i in subs if i.first_fake_at is not None]
    ends = Counter(i.ended for i in subs)
    print(f"  substitute identities: {len(subs)} ({', '.join(f'{n} {e}' for e, n in ends.items())})"
          f"; never caught: {sum(i.first_fake_check is None for i in subs)}")
    if checks:
        print(f"  fingerprint checks until the first fake verdict: median "
              f"{statistics.median(checks):g}, max {max(checks)}; seconds from connect: median "
              f"{statistics.median(seconds):.0f}, max {max(seconds):.0f}")
    for kind in SUBSTITUTES:
        served = sum(i.paid_tokens for i in subs if i.machine.paid_kind == kind)
        count = sum(i.machine.paid_kind == kind for i in subs)
        print(f"    {kind:14} identities {count:4d}, paid tokens {served:,}")
    honest_kinds = network.recording.honest_kinds()
    print(f"  honest: {tally.honest_exams:,} exams sat ({tally.honest_reexams:,} of them after a "
          f"peer disagreement; {tally.honest_exam_checks:,} exam checks), "
          f"{tally.honest_verdicts:,} fingerprint verdicts (replays of "
          f"{len(honest_kinds) * len(network.recording.prompts)} distinct recorded answers), "
          f"quarantined by their own answer: {tally.honest_quarantined}")
    reexam = "sends both to a re-exam" if s.exam else "no exam to send them to"
    print(f"  re-scored paid jobs {tally.rescored:,} ({tally.unverified:,} found no peer); a peer "
          f"disagreement ({reexam}) involved honest nodes {tally.disagreements['honest']:,} "
          f"times, honest-on-probes-only nodes {tally.disagreements['probes-only']:,} times, "
          f"substitutes {tally.disagreements['substitute']:,}")
    print(f"  disputes corroborated by peers of {network.authenticity.peer_corroboration} "
          f"operators (a fake verdict): honest-on-probes-only nodes "
          f"{tally.corroborated['probes-only']:,}, honest nodes {tally.corroborated['honest']:,}")


def judged_once(recording: Recording, network: Network) -> None:
    """Each recorded answer meets the real judges once: the sim only replays these verdicts."""
    tolerances = network.authenticity.tolerances
    print("Recorded answers, judged once by the real code (the simulation replays them):")
    for kind, answers in recording.answers.items():
        fingerprint = Counter(
            compare(answer, stored.tokens, tolerances, divergence_allowed=True).verdict
            for answer, stored in zip(answers, recording.fingerprint.answers, strict=True)
        )
        rescored = Counter(
            compare(answer, scored, tolerances).verdict
            for answer, scored in zip(answers, recording.scored[kind], strict=True)
        )
        print(f"  {kind:32} fingerprint {dict(fingerprint)}; re-scoring {dict(rescored)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    parser.add_argument("--fresh", action="store_true", help="record the answers again")
    parser.add_argument("--load", type=float, default=0.5,
                        help="mean share of the honest nodes' slots busy with paid jobs")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        recording = await load_or_record(prompts=2, honest_setups=1, max_tokens=24,
                                         fresh=args.fresh)
        scenario = QUICK
    else:
        recording = await load_or_record(prompts=6, honest_setups=3, fresh=args.fresh)
        scenario = FULL
    print(f"Answers of the real models: {len(recording.prompts)} prompts x "
          f"{len(recording.answers)} kinds (recorded in {recording.seconds:.0f} s, or cached)")
    scenario = replace(scenario, load=args.load)
    control = Network(replace(scenario, exam=False), recording, args.seed)
    judged_once(recording, control)
    control.run()
    describe(control, "Control (no admission exam, no quarantine; removal at 3 fake verdicts)")
    network = Network(scenario, recording, args.seed)
    network.run()
    describe(network, "Defaults (exam of 3, quarantine, identity limits, peer re-scoring)")
    share, quarantined = substitute_share(network.tally), network.tally.honest_quarantined
    checks = [i.first_fake_check for i in network.identities if i.first_fake_check is not None]
    first = f"{statistics.median(checks):g} (max {max(checks)})" if checks else "never"
    harness.report(
        "integrity", "substitute share of paid tokens <= 0.1%, 0 honest quarantined",
        f"{share:.3%} of paid tokens by substitutes (substitute nodes "
        f"{network.tally.paid_tokens['substitute']:,}, honest-on-probes-only "
        f"{network.tally.paid_tokens['probes-only']:,} tokens; control without exam "
        f"{substitute_share(control.tally):.3%}); {quarantined} honest quarantined over "
        f"{network.tally.honest_exams:,} honest exams; first fake verdict after {first} check(s)",
        share <= TARGET_SHARE and quarantined == 0, quick=args.quick,
        share=share, control_share=substitute_share(control.tally),
        honest_quarantined=quarantined,
    )


if __name__ == "__main__":
    asyncio.run(main())
