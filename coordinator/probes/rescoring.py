"""Re-scoring: a random sample of finished jobs, checked after the fact by another node.

Every job asks the node for its tokens' logprobs, so a finished job carries the node's claim. The
sampler (an observer of every attempt, paid or probe) keeps a random share of the successful
ones (``rescore_rate``) in a bounded queue and, off the consumer's path, asks a verifier (another
node serving the same catalogue model) to score the prompt plus the first node's tokens in one
prefill pass (:class:`protocol.messages.ScoreRequest`). The comparison core
(:mod:`coordinator.probes.plausibility`) then rules; a decided verdict goes to the contributions
as an :class:`AuthenticityVerdict` (the points core turns a fake one into its penalty).

Without configured verifiers (no ``trusted_nodes`` or ``trusted_operators``), re-scoring still
runs, on a *peer* (:func:`may_verify`): a node enrolled to another operator's account, admitted
for the model by its exam, and at full trust on the routing ramp (seen for ``ramp_days``). A
peer is not the platform: when the two disagree, neither is blamed (no verdict is recorded) but
both go back to a fingerprint re-exam at once (:func:`ruling`), which tells the substitute from
the honest one. Peers re-score paid answers only (:func:`eligible_verifiers`). A node honest on
its exam and cheating on paid jobs is caught there; so is a verifier serving a substitute itself
(it disagrees with the honest nodes it checks). Cheats of two operators vouch for each other only
until an honest peer draws one of their jobs (the verifier is drawn at random among those
eligible).

The checked node never learns of it: nothing it receives differs, the check happens after its
answer was delivered, on another node. A full queue drops the sample (counted) rather than hold
anything up; a failed or impossible check (no verifier free) decides nothing.

The rules named here are pure, in :mod:`coordinator.probes.rescoring_rules`; this module gathers
their facts from the hub and the router, runs the checks and carries out the rulings.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass

from aiohttp import web

from coordinator.channel import DispatchFailed, JobCutOff
from coordinator.contributions import AuthenticityVerdict
from coordinator.hub.live import LiveNode
from coordinator.hub.observation import JobObservation
from coordinator.hub.payees import payee_of
from coordinator.periodic import stop_if_cancelled
from coordinator.probes.needs import PROBE_NEEDS, ProbeNeeds
from coordinator.probes.plausibility import Comparison, compare
from coordinator.probes.rescoring_rules import (
    AnswerCounts,
    Candidate,
    Disputes,
    eligible_verifiers,
    rescore_chance,
    ruling,
)
from coordinator.probes.verdicts import record_authenticity
from coordinator.routing import Outcome, ramp_fraction
from coordinator.settings.authenticity import AuthenticitySettings
from protocol import SCORING_PROTOCOL_VERSION
from protocol.chat import TokenLogprob
from protocol.ids import JobId, ModelId, NodeId
from protocol.messages import JobFailed, ScoredContinuation, ScoreRequest, TokenScores

log = logging.getLogger(__name__)


class ScoringFailed(Exception):
    """The verifier could not score (it left, failed, timed out or answered out of shape)."""


def is_trusted(node: LiveNode, settings: AuthenticitySettings) -> bool:
    """Whether the platform vouches for ``node`` as a verifier (by id or operator wallet)."""
    return node.node_id in settings.trusted_nodes or (
        node.operator is not None and node.operator in settings.trusted_operators
    )


def candidate_of(services: ProbeNeeds, node: LiveNode, model: ModelId) -> Candidate:
    """The facts :func:`may_verify` reads about a connected node, as of now."""
    age_s = services.clock.now().timestamp() - node.first_seen.timestamp()
    return Candidate(
        node_id=node.node_id,
        operator=node.payee_account_id if node.operator is not None else None,
        admitted=services.router.paid_eligible(node.node_id, model),
        trust=ramp_fraction(age_s, services.settings.routing),
        scores=node.register.protocol_version >= SCORING_PROTOCOL_VERSION,
        platform=is_trusted(node, services.settings.authenticity),
    )


def verifiers(
    services: ProbeNeeds, model: ModelId, checked: NodeId, *, probe: bool = False
) -> list[LiveNode]:
    """Connected nodes that may re-score ``checked``'s answer for ``model`` (a probe's if
    ``probe``)."""
    settings = services.settings.authenticity
    nodes = {node.node_id: node for node in services.hub.nodes_serving(model)}
    chosen = eligible_verifiers(
        (candidate_of(services, node, model) for node in nodes.values()),
        checked, payee_of(services, checked),
        platform_configured=bool(settings.trusted_nodes or settings.trusted_operators),
        probe=probe,
    )
    return [nodes[c.node_id] for c in chosen]


def score_request(
    observation: JobObservation, job_id: JobId, top_logprobs: int, max_tokens: int = 2048
) -> ScoreRequest:
    """The scoring of what the node claimed to emit (its first ``max_tokens`` tokens), by id
    where it reported ids."""
    claimed = observation.logprobs[:max_tokens]
    ids = [lp.token_id for lp in claimed]
    token_ids = None if any(i is None for i in ids) else tuple(i for i in ids if i is not None)
    job = observation.job
    return ScoreRequest(
        job_id=job_id, model=job.model, messages=job.messages, prefix=job.continuation,
        continuation=ScoredContinuation(
            text="".join(lp.token for lp in claimed), token_ids=token_ids
        ),
        top_logprobs=top_logprobs,
    )


async def score_on(
    services: ProbeNeeds, verifier: NodeId, request: ScoreRequest, timeout_s: float
) -> tuple[TokenLogprob, ...]:
    """Have ``verifier`` score ``request``; its slot is counted while it works."""
    router, clock = services.router, services.clock
    counted = verifier in router
    if counted:
        router.job_started(verifier, now=clock.monotonic())
    try:
        try:
            channel = await services.hub.dispatch(verifier, request)
        except DispatchFailed as exc:
            raise ScoringFailed("verifier left") from exc
        try:
            async with asyncio.timeout(timeout_s):
                event = await channel.get()
        except TimeoutError as exc:
            await services.hub.cancel(verifier, request.job_id)
            raise ScoringFailed("verifier timed out") from exc
        if isinstance(event, TokenScores):
            return event.logprobs
        if isinstance(event, JobFailed | JobCutOff):
            raise ScoringFailed(f"verifier failed: {event}")
        await services.hub.cancel(verifier, request.job_id)
        raise ScoringFailed(f"verifier answered a scoring with {type(event).__name__}")
    finally:
        if counted and verifier in router:
            # Neutral: a verifier is neither rewarded nor blamed for the extra work.
            router.job_finished(
                verifier, Outcome.NEUTRAL, now=clock.monotonic(),
                wall_now=clock.now().timestamp(),
            )
            services.hub.notify_capacity()


@dataclass
class SamplerCounts:
    sampled: int = 0
    dropped: int = 0  # the queue was full
    unverified: int = 0  # no verifier, or it failed
    genuine: int = 0
    substituted: int = 0
    inconclusive: int = 0


class RescoringSampler:
    """The observer that samples jobs, and the loop that has them re-scored."""

    def __init__(self, services: ProbeNeeds, rng: random.Random | None = None) -> None:
        self._services = services
        self._settings = services.settings.authenticity
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[JobObservation] = asyncio.Queue(self._settings.rescore_queue)
        self._serial = 0
        self.counts = SamplerCounts()
        self.answers = AnswerCounts()
        self.disputes = Disputes(
            self._settings.peer_corroboration, self._settings.peer_dispute_window_s
        )

    def __call__(self, observation: JobObservation) -> None:
        """Keep a random share of successful attempts; never blocks, never raises."""
        if observation.outcome is not Outcome.SUCCESS or not observation.logprobs:
            return
        if observation.job.params.steers_choice or not observation.job.plain_chat:
            # its tokens were not drawn from the model's own distribution alone, or followed
            # a prompt a verifier's scoring would not render the same way
            return
        chance = self._settings.rescore_rate if observation.probe else rescore_chance(
            self.answers.seen(observation.node_id), self._settings
        )
        if self._rng.random() >= chance:
            return
        try:
            self._queue.put_nowait(observation)
        except asyncio.QueueFull:
            self.counts.dropped += 1
            return
        self.counts.sampled += 1

    async def run(self) -> None:
        """Check sampled jobs one at a time, forever."""
        while True:
            observation = await self._queue.get()
            try:
                await self.check(observation)
            except Exception:  # one bad check must not end the loop
                stop_if_cancelled()
                log.exception("re-scoring of a job on %s failed", observation.node_id)
                self.counts.unverified += 1

    async def check(self, observation: JobObservation) -> Comparison | None:
        """Re-score one job on a verifier; act on the verdict and return it, if any."""
        services = self._services
        candidates = verifiers(
            services, observation.job.model, observation.node_id, probe=observation.probe
        )
        if not candidates:
            self.counts.unverified += 1
            return None
        verifier = self._rng.choice(candidates)
        self._serial += 1
        request = score_request(
            observation, JobId(f"score-{observation.job.job_id}-{self._serial}"),
            services.settings.job_top_logprobs, self._settings.rescore_max_tokens,
        )
        try:
            reference = await score_on(
                services, verifier.node_id, request, self._settings.rescore_timeout_s
            )
        except ScoringFailed as exc:
            log.info("no re-scoring of %s: %s", observation.node_id, exc)
            self.counts.unverified += 1
            return None
        claimed = observation.logprobs[:self._settings.rescore_max_tokens]
        comparison = compare(claimed, reference, self._settings.tolerances)
        if comparison.genuine is None:
            self.counts.inconclusive += 1
            return comparison
        if comparison.genuine:
            self.counts.genuine += 1
        else:
            self.counts.substituted += 1
            log.warning(
                "node %s failed re-scoring of %s: %s",
                observation.node_id, observation.job.model, comparison.reason,
            )
        model = observation.job.model
        platform = is_trusted(verifier, self._settings)
        corroborated = (
            comparison.genuine is False and not platform
            and self.disputes.dispute(
                observation.node_id, verifier.payee_account_id,
                services.clock.now().timestamp(),
            )
        )
        decided = ruling(
            comparison.genuine, observation.node_id, verifier.node_id, platform=platform,
            corroborated=corroborated,
        )
        if decided.reexamine:
            log.warning("re-examining %s for %s after re-scoring", decided.reexamine, model)
        for node_id in decided.reexamine:
            services.admission.verdict(node_id, model, genuine=False)
        if decided.verdict is not None:
            await record_authenticity(services, AuthenticityVerdict(
                node_id=observation.node_id, at=services.clock.now().timestamp(),
                model=model, genuine=decided.verdict,
            ))
        return comparison


async def rescoring(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: subscribe the sampler to every attempt and run its loop."""
    services = app[PROBE_NEEDS]
    sampler = RescoringSampler(services)
    services.observers.append(sampler)
    task = asyncio.create_task(sampler.run())
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    with suppress(ValueError):
        services.observers.remove(sampler)
