"""The points history on the coordinator: recording contributions and scoring them.

:class:`PointsKeeper` is both the ``Services.contributions`` sink and a ``Services.observers``
callable. On the consumer's path it only folds counters in memory (:class:`ContributionBatcher`);
finished hours are appended to the store in one statement every ``flush_interval_s``, and
everything left is appended on shutdown. Every ``recompute_interval_s`` it reloads the whole
stored history and scores it from scratch (off the event loop), then disconnects and refuses the
nodes the rules remove for good.

A fake-model verdict does not wait for that: :meth:`PointsKeeper.record_fake` stores it at once
and, in the same transaction, removes the node if it has now reached ``offender_fake_verdicts``
within ``offender_window_days`` (the removal is stored, so every replica refuses the node when it
registers; the others disconnect it when they read this replica's presence).

Pages read :meth:`PointsKeeper.current`: the last fold for the past, and the days since (today,
in practice) scored again from the rows appended after it (one bounded query) and what this
replica still holds in memory, so a node that just served shows it on the next page load.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import suppress
from datetime import datetime

from coordinator.clock import Clock
from coordinator.contributions import (
    DAY_S,
    AuthenticityVerdict,
    Contribution,
    JobResult,
    Measurement,
    NodeFacts,
    utc_day,
)
from coordinator.hub.live import NodeHub
from coordinator.hub.observation import JobObservation
from coordinator.periodic import every
from coordinator.points.batches import ContributionBatcher, OnlineTracker
from coordinator.points.day import removal_day
from coordinator.points.history import History
from coordinator.points.standings import Standings, rescored, score_history
from coordinator.routing import Outcome, Router
from coordinator.settings.points import PointsSettings
from coordinator.store.contributions import (
    append_contributions,
    load_contributions_after,
    load_node_facts,
)
from coordinator.store.database import Database
from coordinator.store.removals import fake_verdict_times, lock_node, record_removal
from protocol.close_codes import CloseCode
from protocol.ids import NodeId

log = logging.getLogger(__name__)

REMOVED_REASON = "removed from the network: caught serving a different model than it claims"
RECENT_REMOVAL_S = 600.0  # how long a removal is told to the other replicas in presence


class PointsKeeper:
    """Records contributions in hourly batches and keeps the standings scored from them."""

    def __init__(
        self, settings: PointsSettings, clock: Clock, database: Database, hub: NodeHub,
        router: Router, refused_nodes: dict[NodeId, str],
    ) -> None:
        self.settings, self.clock, self.database = settings, clock, database
        self.hub, self.router = hub, router
        self.refused_nodes = refused_nodes
        """Shared with the hub's registration: who may not join, and why."""
        self.batcher = ContributionBatcher()
        self.online = OnlineTracker()
        self.standings = Standings(utc_day(clock.now().timestamp()), settings.constants)
        self._flush_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._live_lock = asyncio.Lock()
        # The stored history as far as row ``_stored_up_to``, and the facts of its nodes.
        self._stored = History()
        self._stored_up_to = 0
        self._facts: dict[NodeId, NodeFacts] = {}
        self._scored_since = -math.inf  # when the latest live scoring began (monotonic)
        self._recent_removals: dict[NodeId, float] = {}  # node -> when removed here (epoch s)

    # --- on the hot path: memory only -----------------------------------------------------------

    def add(self, contribution: Contribution) -> None:
        """Append a contribution to the history (batched: stored within the hour's end)."""
        self.batcher.add(contribution)

    def observe(self, observation: JobObservation) -> None:
        """Fold one job attempt in: its speed sample, and for a paid job its outcome and tokens.

        A probe's verdict is recorded by the scheduler (a judge may still overturn it). A paid
        job that ended neutral (the consumer left, the node was busy) counts only if it
        delivered tokens, and then as completed: it served what was asked until the end.
        """
        at, node_id, model = observation.finished_at, observation.node_id, observation.job.model
        if observation.tok_s is not None:
            self.batcher.add(Measurement(node_id=node_id, at=at, model=model,
                                         tok_s=observation.tok_s))
        if observation.probe or observation.self_dealt:  # an operator's own calls earn nothing
            return
        if observation.outcome is Outcome.NEUTRAL and observation.tokens == 0:
            return
        self.batcher.add(JobResult(
            node_id=node_id, at=at, model=model,
            completed=observation.outcome is not Outcome.FAILURE, tokens=observation.tokens,
        ))

    def credit_online(self) -> None:
        """Credit every connected node with its time online since the last credit, to the
        routing health window and to the history (the upkeep loop calls this)."""
        wall_now = self.clock.now().timestamp()
        connected = {node.node_id: node.connected_at.timestamp() for node in self.hub.nodes()}
        for span in self.online.tick(connected, wall_now):
            if span.node_id in self.router:
                self.router.add_online(span.node_id, span.seconds, wall_now=span.at)
            self.batcher.add(span)

    # --- off the hot path -----------------------------------------------------------------------

    async def flush(self, *, everything: bool = False) -> int:
        """Append the batches of every finished hour (or all of them) to the store."""
        async with self._flush_lock:
            now = self.clock.now()
            records = self.batcher.take(None if everything else now.timestamp())
            if not records:
                return 0
            try:
                async with self.database.session() as session, session.begin():
                    await append_contributions(session, records, now)
            except BaseException:
                self.batcher.extend(records)  # kept for the next flush: nothing is lost
                raise
            return len(records)

    async def refresh(self) -> Standings:
        """Score the whole stored history (and what is still batched) from scratch, then remove
        the persistent offenders. Pages keep reading the last standings meanwhile."""
        async with self._refresh_lock:
            began = self.clock.monotonic()
            self.credit_online()
            await self.flush()
            async with self.database.session() as session:
                stored, up_to = await load_contributions_after(session)
                facts = await load_node_facts(session)
            # What was stored while the whole history loaded, and what is batched, together:
            # no flush in between, so nothing is in neither (or in both).
            async with self._flush_lock, self.database.session() as session:
                since, up_to = await load_contributions_after(session, up_to)
                pending = self.batcher.preview()
            settings = self.settings
            today = utc_day(self.clock.now().timestamp())

            def score() -> tuple[History, Standings]:
                history = History([*stored, *since])
                return history, score_history(
                    history.extended(pending), facts, today, settings.constants,
                    settings.max_days,
                )

            history, standings = await asyncio.to_thread(score)
            async with self._live_lock:
                # Possibly older than a page's scoring meanwhile: the next page scores from here.
                self._stored, self._stored_up_to, self._facts = history, up_to, facts
                self.standings, self._scored_since = standings, began
            await self._remove_offenders()
            return self.standings

    async def current(self) -> Standings:
        """The standings as of now: the days since the last look scored again from the rows
        appended since (on any replica) and what this replica has not stored yet."""
        asked_at = self.clock.monotonic()
        async with self._live_lock:
            if self._scored_since >= asked_at:
                # Scored from a start after this request came in: as current as another pass,
                # so readers arriving together share one (the work stays one pass at a time).
                return self.standings
            began = self.clock.monotonic()
            self.credit_online()
            async with self._flush_lock, self.database.session() as session:
                newer, up_to = await load_contributions_after(session, self._stored_up_to)
                pending = self.batcher.preview()
                unknown = {record.node_id for record in (*newer, *pending)} - self._facts.keys()
                if unknown:
                    self._facts.update(await load_node_facts(session, unknown))
            settings = self.settings
            now = self.clock.now().timestamp()
            today = utc_day(now)
            first = utc_day(min((record.at for record in (*newer, *pending)), default=now))
            previous, facts = self.standings, dict(self._facts)

            def score() -> tuple[History, Standings]:
                stored = self._stored.extended(newer)
                return stored, rescored(
                    previous, stored.extended(pending), facts, first, today, settings.max_days
                )

            self._stored, self.standings = await asyncio.to_thread(score)
            self._stored_up_to, self._scored_since = up_to, began
            return self.standings

    async def record_fake(self, verdict: AuthenticityVerdict) -> bool:
        """Store a fake-model verdict now, and remove its node in the same transaction if that
        makes it a persistent offender; returns whether it was removed."""
        constants = self.settings.constants
        now = self.clock.now()
        async with self.database.session() as session, session.begin():
            node = await lock_node(session, verdict.node_id)  # one node's verdicts queue here
            await append_contributions(session, [verdict], now)
            if node is None:
                return False
            since = verdict.at - constants.offender_window_days * DAY_S
            times = await fake_verdict_times(session, verdict.node_id, since)
            if removal_day(times, constants) is None:
                return False
            await record_removal(session, node, now, REMOVED_REASON)
        await self.remove_here(verdict.node_id)
        return True

    async def remove_here(self, node_id: NodeId, *, announce: bool = True) -> None:
        """Refuse the node on this replica and disconnect it if it is connected here;
        ``announce``: tell the other replicas too (each scores the stored history alike)."""
        if node_id not in self.refused_nodes:
            log.warning("node %s removed from the network", node_id)
            if announce:
                self._recent_removals[node_id] = self.clock.now().timestamp()
        self.refused_nodes[node_id] = REMOVED_REASON
        live = self.hub.get(node_id)
        if live is not None:
            with suppress(Exception):
                await live.close(CloseCode.REFUSED, REMOVED_REASON)

    def recent_removals(self, now: datetime) -> tuple[NodeId, ...]:
        """The nodes removed here lately, for the other replicas to disconnect."""
        cutoff = now.timestamp() - RECENT_REMOVAL_S
        for node_id in [node for node, at in self._recent_removals.items() if at < cutoff]:
            del self._recent_removals[node_id]
        return tuple(sorted(self._recent_removals))

    async def _remove_offenders(self) -> None:
        for node_id in self.standings.removed:
            await self.remove_here(node_id, announce=False)

    async def run_flushes(self) -> None:
        """Forever: append finished hours every ``flush_interval_s``."""
        await every(self.settings.flush_interval_s, self.flush, log, "append contributions",
                    wait_first=True)

    async def run_refreshes(self) -> None:
        """Forever: rescore the history every ``recompute_interval_s``."""
        await every(self.settings.recompute_interval_s, self.refresh, log, "recompute points",
                    wait_first=True)
