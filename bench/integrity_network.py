"""The coordinator's decisions over simulated machines, one second at a time.

Real: the probe schedule and its pure decisions (``ProbeSchedule.due``, ``may_probe``,
``may_examine``, ``draw_probe`` over the fingerprint source and the prompt pool, in the app's
order), the fingerprint judge (``FingerprintSource``'s judge), the re-scoring comparison
(``compare``), its peer rule and ruling (``rescoring_rules``). Simulated: paid traffic (Poisson
arrivals, a day-night swing), the nodes' answers (recorded, replayed) and the I/O loops around
the decisions (ProbeScheduler.tick and _record, RescoringSampler.check), re-played where marked.
Joining, leaving and removal are :class:`integrity_membership.Membership`'s.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
import statistics
from functools import partial

import numpy as np
from integrity_answers import TOP_LOGPROBS, Recording
from integrity_machines import DAY, MODEL, RESTART_S, WALL0, Identity, Scenario, build_machines
from integrity_membership import Membership

from coordinator.hub.observation import JobObservation
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
from coordinator.routing import Outcome
from coordinator.settings.probes import ProbeSettings
from protocol.ids import NodeId


class Network(Membership):
    """Paid traffic, probes and re-scoring over the members, one simulated second at a time."""

    def __init__(self, scenario: Scenario, recording: Recording, seed: int) -> None:
        super().__init__(scenario, recording, seed)
        self.draws = np.random.default_rng(seed)
        self.fingerprints = FingerprintSource(
            {MODEL: recording.fingerprint}, self.authenticity.tolerances,
            share=self.authenticity.fingerprint_share,
        )
        # The app's order: the fingerprint source first, the realistic pool for the rest.
        self.sources: list[ProbeSource] = [self.fingerprints, PromptPool()]
        probes = ProbeSettings()
        self.schedule = ProbeSchedule(self.points.probe_interval_s, probes.jitter)
        self.prompt_index = {p: i for i, p in enumerate(recording.prompts)}
        self.examining: set[NodeId] = set()  # an exam probe in flight
        self.disputes = Disputes(
            self.authenticity.peer_corroboration, self.authenticity.peer_dispute_window_s
        )
        spread = random.Random(seed)  # drawn once: pydantic-validated params are slow to draw
        self.lengths = [
            max(1, int(realistic_params(spread).max_tokens * spread.uniform(0.3, 1.0)))
            for _ in range(4_096)
        ]
        self.verdicts: dict[tuple[str, str], bool | None] = {}
        self.machines = build_machines(scenario, recording.honest_kinds(), self.rng)
        self.mean_rate = scenario.load * sum(
            m.slots for m in self.machines if m.role == "honest"
        ) / self.mean_paid_seconds()

    # --- paid traffic -----------------------------------------------------------------------------

    def mean_paid_seconds(self) -> float:
        honest = [m for m in self.machines if m.role == "honest"]
        draw = random.Random(1)
        return statistics.fmean(
            self.paid_tokens(draw) / draw.choice(honest).tok_s for _ in range(20_000)
        )

    def paid_tokens(self, rng: random.Random) -> int:
        """A paid completion's length: its budget from the consumer spread, mostly filled."""
        return rng.choice(self.lengths)

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

    # --- probes -----------------------------------------------------------------------------------

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

    # --- verdicts ---------------------------------------------------------------------------------

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
