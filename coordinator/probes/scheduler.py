"""Unannounced health checks: every connected node, about once a minute, at jittered times.

Decisions are pure (:class:`ProbeSchedule`, :func:`may_probe`, :func:`draw_probe`, with the clock
reading and the ``random.Random`` passed in); :class:`ProbeScheduler` carries them out. A probe is
a :class:`~protocol.messages.Job` built exactly as the gateway builds a consumer's (same id format,
same ``top_logprobs``, realistic messages and sampling), sent through the same
:meth:`~coordinator.hub.calls.NodeCalls.run`, so a node cannot answer probes differently.

Verdicts: a probe that completes passes, unless its source gave a judge and the judge says the
answer is not what the claimed model would give; a failure or a timeout fails; a neutral end (the
node was busy, draining or left before it started) is not counted. Each verdict goes to the
node's 14-day health window (``Router.record_probe``) and to the points history as a
:class:`~coordinator.points.ProbeResult`; a judge's "no" is also an
:class:`~coordinator.points.AuthenticityVerdict` with ``genuine=False`` (a "yes" one with
``genuine=True``), stored at once and removing the node at the offender threshold
(:mod:`coordinator.probes.verdicts`). Judges only judge: they must not record verdicts themselves.

Probes never starve paid traffic: a node is skipped (and checked again next interval) while it has
no spare slot or requests are waiting for one of its models.

The admission exam (:mod:`coordinator.hub.admission`) adds fingerprint probes outside the
schedule: a node that has checks due for a model gets one as soon as it has a spare slot, one at a
time, even while requests wait (it takes no paid job until it passes, so waiting requests are no
reason to wait). Each decided verdict goes to the exam: a genuine one counts toward admission, a
fake one holds the node back from paid jobs for the model at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from coordinator.contributions import AuthenticityVerdict, ProbeResult
from coordinator.errors import CoordinatorError
from coordinator.hub.calls import AttemptFailed, new_job_id
from coordinator.hub.observation import JobObservation
from coordinator.periodic import every
from coordinator.probes.needs import ProbeNeeds
from coordinator.probes.sources import ProbeDraw, ProbeSource
from coordinator.probes.verdicts import record_authenticity
from coordinator.routing import NodeSnapshot, Outcome
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import Job

log = logging.getLogger(__name__)


def first_probe_at(now: float, interval_s: float, rng: random.Random) -> float:
    """When a node just seen is first checked: anywhere in the coming interval, so a restart
    does not probe every node at once."""
    return now + interval_s * rng.random()


def next_probe_at(now: float, interval_s: float, jitter: float, rng: random.Random) -> float:
    """The next check after one at ``now``: the interval times a draw in [1-jitter, 1+jitter]."""
    return now + interval_s * rng.uniform(1.0 - jitter, 1.0 + jitter)


class ProbeSchedule:
    """When each connected node is next due (monotonic seconds)."""

    def __init__(self, interval_s: float, jitter: float) -> None:
        self.interval_s = interval_s
        self.jitter = jitter
        self._due: dict[NodeId, float] = {}

    def due(self, live: Iterable[NodeId], now: float, rng: random.Random) -> list[NodeId]:
        """The live nodes due at ``now``, each rescheduled; nodes gone are forgotten."""
        live_ids = list(live)
        present = set(live_ids)
        for gone in [node for node in self._due if node not in present]:
            del self._due[gone]
        due: list[NodeId] = []
        for node_id in live_ids:
            at = self._due.get(node_id)
            if at is None:
                self._due[node_id] = first_probe_at(now, self.interval_s, rng)
            elif at <= now:
                due.append(node_id)
                self._due[node_id] = next_probe_at(now, self.interval_s, self.jitter, rng)
        return due

    def next_due(self, node_id: NodeId) -> float | None:
        return self._due.get(node_id)


def may_probe(snapshot: NodeSnapshot, waiting: Mapping[ModelId, int]) -> bool:
    """Whether a probe may take a slot on the node now without holding up paid traffic.

    A node below the speed floor is still probed: probes are how it gets measured again.
    """
    if not may_examine(snapshot):
        return False
    return not any(waiting.get(model, 0) > 0 for model in snapshot.models)


def may_examine(snapshot: NodeSnapshot) -> bool:
    """Whether an exam probe may take a slot on the node now: a slot is free."""
    return snapshot.live and not snapshot.draining and snapshot.spare_capacity > 0.0


def draw_probe(
    sources: Sequence[ProbeSource], model: ModelId, rng: random.Random
) -> ProbeDraw | None:
    """The first draw any source (asked in order) offers for ``model``."""
    for source in sources:
        draw = source.draw(model, rng)
        if draw is not None:
            return draw
    return None


def probe_job(model: ModelId, draw: ProbeDraw, top_logprobs: int) -> Job:
    """The job a probe sends: built as the gateway builds a consumer's first attempt."""
    return Job(
        job_id=new_job_id(), model=model, messages=draw.messages, params=draw.params,
        top_logprobs=top_logprobs, continuation="",
    )


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    node_id: NodeId
    model: ModelId
    passed: bool
    judged: bool


class ProbeScheduler:
    """Carries the schedule out against the live hub.

    Each replica probes the nodes connected to it and no others, so across replicas every node is
    probed by exactly one scheduler, and a node that moves to another replica is probed there.

    Sources are read from ``services.probe_sources`` at every probe, so a source registered
    after start-up (e.g. fingerprints) takes part at once.
    """

    def __init__(self, services: ProbeNeeds) -> None:
        settings = services.settings
        interval = settings.probes.interval_s or settings.points.constants.probe_interval_s
        self.services = services
        self.schedule = ProbeSchedule(interval, settings.probes.jitter)
        self._observed: dict[JobId, JobObservation | None] = {}
        self._running: set[asyncio.Task[ProbeVerdict | None]] = set()
        self._examining: set[NodeId] = set()  # nodes with an exam probe in flight
        services.observers.append(self._observe)

    def _observe(self, observation: JobObservation) -> None:
        if observation.probe and observation.job.job_id in self._observed:
            self._observed[observation.job.job_id] = observation

    def tick(self) -> list[asyncio.Task[ProbeVerdict | None]]:
        """Start a probe on every node that is due; returns the probes started."""
        services = self.services
        live = [node.node_id for node in services.hub.nodes() if not node.draining]
        started = []
        for node_id in self.schedule.due(live, services.clock.monotonic(), services.rng):
            task = self.start_probe(node_id)
            if task is not None:
                started.append(task)
        for node_id in live:
            task = self.start_exam(node_id)
            if task is not None:
                started.append(task)
        return started

    def start_exam(self, node_id: NodeId) -> asyncio.Task[ProbeVerdict | None] | None:
        """Send the node its next admission-exam fingerprint, if it has checks due and a slot."""
        services = self.services
        router, hub, fingerprints = services.router, services.hub, services.fingerprints
        node = hub.get(node_id)
        if node is None or node_id not in router or node_id in self._examining:
            return None
        due = services.admission.due(node_id, node.models)
        now = services.clock.monotonic()
        if not due or not may_examine(router.snapshot(node_id, now=now)):
            return None
        model = services.rng.choice(due)
        draw = fingerprints.exam_draw(model, services.rng)
        if draw is None:
            return None
        job = probe_job(model, draw, services.settings.job_top_logprobs)
        router.job_started(node_id, now=now)
        self._examining.add(node_id)
        task = self._launch(node_id, job, draw)
        task.add_done_callback(lambda _: self._examining.discard(node_id))
        return task

    def start_probe(self, node_id: NodeId) -> asyncio.Task[ProbeVerdict | None] | None:
        """Take a slot on the node and send it a probe, if that holds up no paid request."""
        services = self.services
        router, hub = services.router, services.hub
        node = hub.get(node_id)
        if node is None or node_id not in router:
            return None
        now = services.clock.monotonic()
        if not may_probe(router.snapshot(node_id, now=now), services.waiting):
            return None
        model = services.rng.choice(sorted(node.models))
        draw = draw_probe(services.probe_sources, model, services.rng)
        if draw is None:
            return None
        job = probe_job(model, draw, services.settings.job_top_logprobs)
        router.job_started(node_id, now=now)  # no await since the capacity check
        return self._launch(node_id, job, draw)

    def _launch(
        self, node_id: NodeId, job: Job, draw: ProbeDraw
    ) -> asyncio.Task[ProbeVerdict | None]:
        task = asyncio.create_task(self._probe(node_id, job, draw))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _probe(self, node_id: NodeId, job: Job, draw: ProbeDraw) -> ProbeVerdict | None:
        services = self.services
        self._observed[job.job_id] = None
        try:
            try:
                async with aclosing(services.calls.run(node_id, job, probe=True)) as events:
                    async for _ in events:
                        pass
                passed = True
            except AttemptFailed as failure:
                if failure.outcome is not Outcome.FAILURE:
                    return None
                passed = False
            except CoordinatorError:  # the node found the request unusable: neutral
                return None
            observation = self._observed.get(job.job_id)
            judged = False
            if passed and draw.judge is not None and observation is not None:
                try:
                    genuine = draw.judge(observation)
                except Exception:  # a judge's bug is not the node's fault
                    log.exception("probe judge failed")
                    return None
                judged = genuine is not None  # an undecided answer passes, with no verdict
                passed = genuine is not False
            verdict = ProbeVerdict(node_id, job.model, passed, judged)
            await self._record(verdict)
            return verdict
        finally:
            self._observed.pop(job.job_id, None)

    async def _record(self, verdict: ProbeVerdict) -> None:
        services = self.services
        clock = services.clock
        wall_now = clock.now().timestamp()
        if verdict.node_id in services.router:
            services.router.record_probe(
                verdict.node_id, Outcome.SUCCESS if verdict.passed else Outcome.FAILURE,
                now=clock.monotonic(), wall_now=wall_now,
            )
        services.contributions.add(
            ProbeResult(node_id=verdict.node_id, at=wall_now, model=verdict.model,
                        passed=verdict.passed)
        )
        if verdict.judged:
            services.admission.verdict(verdict.node_id, verdict.model, genuine=verdict.passed)
            services.hub.notify_capacity()  # requests waiting for an admitted node look again
            await record_authenticity(services, AuthenticityVerdict(
                node_id=verdict.node_id, at=wall_now, model=verdict.model, genuine=verdict.passed
            ))

    async def run(self) -> None:
        """Forever: look for due nodes every ``tick_s`` and probe them."""
        async def tick() -> None:
            self.tick()

        await every(self.services.settings.probes.tick_s, tick, log, "run a probe tick",
                    wait_first=True)

    async def close(self) -> None:
        """Stop the probes in flight (they end neutral)."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
