"""This replica's part in a network of replicas: publish its nodes, follow everyone else's,
and run the jobs other replicas send to its nodes.

Presence is the routing view of each node, published by the replica it is connected to (its
*owner*) under an expiring lease; every replica merges the others' into its own
:class:`~coordinator.routing.Router` with the owner's name on each, so least-loaded is chosen
over the whole network. The owner's figures (jobs in flight from every replica, the capacity its
breaker and ramp-up allow) overwrite what a replica counted itself, so counts cannot drift, and a
replica that dies takes its nodes out of every router when its lease lapses.
"""

from __future__ import annotations

import logging
from contextlib import aclosing

from coordinator.bus.base import FakeNotice, NodePresence, RelayJob, ReplicaPresence
from coordinator.errors import InvalidRequest
from coordinator.hub.calls import AttemptFailed
from coordinator.hub.needs import HubNeeds
from coordinator.periodic import every
from coordinator.routing import BreakerState, NodeInfo, Outcome
from protocol.ids import NodeId
from protocol.messages import FailureCode, JobFailed

log = logging.getLogger(__name__)


def local_presence(services: HubNeeds) -> ReplicaPresence:
    """The routing view of every node connected to this replica."""
    router, clock = services.router, services.clock
    now, wall_now = clock.monotonic(), clock.now().timestamp()
    nodes = []
    for live in services.hub.nodes():
        if live.node_id not in router or router.owner(live.node_id) is not None:
            continue
        snap = router.snapshot(live.node_id, now=now)
        capacity = {
            BreakerState.PARKED: 0, BreakerState.HALF_OPEN: min(1, snap.admitted_capacity),
        }.get(snap.breaker_state, snap.admitted_capacity)
        nodes.append(NodePresence(
            node_id=live.node_id, models=tuple(sorted(live.models)), slots=snap.slots,
            contexts=live.contexts, paid_held=router.paid_held(live.node_id),
            declared_tok_s=snap.declared_tok_s, measured_tok_s=snap.measured_tok_s,
            first_seen=live.first_seen.timestamp(), connected_at=live.connected_at.timestamp(),
            model_switched_at=(
                live.model_switched_at.timestamp() if live.model_switched_at else None
            ),
            payee_account_id=live.payee_account_id, in_flight=snap.in_flight,
            capacity=capacity, health_score=snap.health_score,
            draining=live.draining or snap.draining,
            parked_until=(
                wall_now + (snap.park_until - now)
                if snap.breaker_state is BreakerState.PARKED and snap.park_until is not None
                else None
            ),
        ))
    return ReplicaPresence(
        replica=services.bus.replica_id, published_at=wall_now, nodes=tuple(nodes),
        refused=services.refusals.counts(wall_now),
        removed=services.points.recent_removals(clock.now()),
        fakes=tuple(
            FakeNotice(serial=serial, node_id=node_id, model=model)
            for serial, node_id, model in services.admission.fakes_for_owners()
        ),
    )


async def publish_presence(services: HubNeeds) -> None:
    """Forever: publish this replica's presence when it changed, and renew it in any case."""
    settings = services.settings.bus
    renew_every = settings.presence_ttl_s / 3
    published_version, published_at = (-1, -1), float("-inf")
    shared_parks: dict[NodeId, float] = {}

    async def publish_if_due() -> None:
        nonlocal published_version, published_at
        version = (services.router.local_version, services.admission.fakes_serial)
        now = services.clock.monotonic()
        if version == published_version and now - published_at < renew_every:
            return
        presence = local_presence(services)
        await services.bus.publish_presence(presence)
        published_version, published_at = version, now
        for node in presence.nodes:  # parks follow a node to its next replica
            until = node.parked_until
            if until is not None and abs(shared_parks.get(node.node_id, 0) - until) > 1:
                await services.bus.record_park(node.node_id, until)
                shared_parks[node.node_id] = until

    await every(settings.publish_spacing_s, publish_if_due, log, "publish presence")


async def follow_presence(services: HubNeeds) -> None:
    """Forever: merge the other replicas' presence into this replica's router."""
    known_replicas: set[str] = set()
    fakes_heard: dict[str, int] = {}  # per replica, the serial of the last fake verdict applied

    async def follow() -> None:
        nonlocal known_replicas
        replicas = await services.bus.read_presence()
        known_replicas = merge_presence(services, replicas, known_replicas)
        apply_fakes(services, replicas, fakes_heard)
        await remove_announced(services, replicas)

    await every(services.settings.bus.presence_poll_s, follow, log, "follow presence")


def apply_fakes(
    services: HubNeeds, replicas: list[ReplicaPresence], heard: dict[str, int]
) -> None:
    """Quarantine the nodes connected here that another replica judged fake since last time."""
    for replica in replicas:
        last = heard.get(replica.replica, 0)
        if replica.fakes and max(n.serial for n in replica.fakes) < last:
            last = 0  # the replica restarted under the same name: its serials began again
        for notice in replica.fakes:
            if notice.serial > last and services.hub.get(notice.node_id) is not None:
                services.admission.verdict(notice.node_id, notice.model, genuine=False)
                services.hub.notify_capacity()
        heard[replica.replica] = max((n.serial for n in replica.fakes), default=last)


async def remove_announced(services: HubNeeds, replicas: list[ReplicaPresence]) -> None:
    """Refuse, and disconnect if connected here, the nodes other replicas removed."""
    keeper = services.points
    for replica in replicas:
        for node_id in replica.removed:
            if node_id not in services.refused_nodes or services.hub.get(node_id) is not None:
                await keeper.remove_here(node_id, announce=False)


def merge_presence(
    services: HubNeeds, replicas: list[ReplicaPresence], known_replicas: set[str]
) -> set[str]:
    """Apply the others' presence; returns the replicas alive now."""
    router, hub, clock = services.router, services.hub, services.clock
    now, wall_now = clock.monotonic(), clock.now().timestamp()
    claims: dict[NodeId, tuple[str, NodePresence]] = {}
    for replica in replicas:
        for node in replica.nodes:
            if hub.get(node.node_id) is not None:
                continue  # connected here: this replica is its owner
            held = claims.get(node.node_id)
            if held is None or node.connected_at > held[1].connected_at:
                claims[node.node_id] = (replica.replica, node)
    previous = dict(services.remote_nodes)
    current: dict[NodeId, NodePresence] = {}
    changed = False
    for node_id, (owner, node) in claims.items():
        before = previous.get(node_id)
        if (
            before is None or node_id not in router or router.owner(node_id) != owner
            or before.connected_at != node.connected_at
        ):
            router.upsert_node(
                NodeInfo(
                    node_id=node_id, models=frozenset(node.models), slots=node.slots,
                    declared_tok_s=node.declared_tok_s, first_seen=node.first_seen, owner=owner,
                    contexts=node.contexts,
                ),
                now=now, wall_now=wall_now,
            )
        for model in node.models:  # the owner's exam decides, here too
            if model in node.paid_held:
                router.hold_paid(node_id, model)
            else:
                router.admit_paid(node_id, model)
        router.observe_remote(
            node_id, in_flight=node.in_flight, capacity=node.capacity,
            health_score=node.health_score, measured_tok_s=node.measured_tok_s,
            draining=node.draining, now=now,
        )
        current[node_id] = node
        changed = changed or before != node
    for node_id, node in previous.items():
        if node_id not in current and node_id in router and router.owner(node_id) is not None:
            router.remove_node(node_id)
            services.departed_payees.remember(node_id, node.payee_account_id)
            changed = True
    services.remote_nodes.clear()
    services.remote_nodes.update(current)
    alive = {replica.replica for replica in replicas}
    for gone in known_replicas - alive:
        log.warning("replica %s is gone", gone)
        services.bus.replica_gone(gone, f"replica {gone} is gone")
    if changed:
        hub.notify_capacity()
    return alive


async def serve_relayed(services: HubNeeds, message: RelayJob) -> None:
    """Run a job another replica sent to a node connected here; send every event back."""
    bus, router, job, node_id = services.bus, services.router, message.job, message.node_id
    now = services.clock.monotonic()
    if services.hub.get(node_id) is None or node_id not in router or router.owner(node_id):
        await bus.reply(message.origin, JobFailed(
            job_id=job.job_id, code="draining", message="node not connected to this replica"
        ))
        return
    if not router.paid_eligible(node_id, job.model):  # the origin had not heard yet
        await bus.reply(message.origin, JobFailed(
            job_id=job.job_id, code="busy", message="node has not passed its admission exam"
        ))
        return
    if not router.snapshot(node_id, now=now).candidate:
        await bus.reply(message.origin, JobFailed(
            job_id=job.job_id, code="busy", message="node has no free slot"
        ))
        return
    router.job_started(node_id, now=now)
    try:
        async with aclosing(services.calls.run(node_id, job, observe=False)) as events:
            async for event in events:
                await bus.reply(message.origin, event)
    except AttemptFailed as failure:
        code: FailureCode = "busy" if failure.outcome is Outcome.NEUTRAL else "engine_error"
        await bus.reply(message.origin, JobFailed(
            job_id=job.job_id, code=code, message=failure.reason[:2000]
        ))
    except InvalidRequest as refused:
        await bus.reply(message.origin, JobFailed(
            job_id=job.job_id, code="bad_request", message=refused.message[:2000]
        ))
