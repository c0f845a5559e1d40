"""Nodes joining and leaving the simulated network, as the coordinator admits and removes them.

Real: the routing (:class:`coordinator.routing.Router`), the admission exam and quarantine
(:class:`coordinator.hub.admission.Admission`), the enrollment limits
(``accounts.identity.enrollment_refusal``) and removal at the offender threshold
(``points.day.removal_day``). Re-played here: the few lines of glue around them in registration
(``hub/connect.py``) and in the keeper's ``record_fake``. :class:`integrity_network.Network`
builds paid traffic, probes and re-scoring on top of this.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from integrity_answers import Recording
from integrity_machines import DAY, MODEL, RESTART_S, WALL0, Identity, Machine, Scenario, Tally

from coordinator.accounts.identity import EnrollmentLimits, enrollment_refusal
from coordinator.hub.admission import Admission
from coordinator.points.day import removal_day
from coordinator.routing import HealthBucket, NodeInfo, Router
from coordinator.routing.health import bucket_start
from coordinator.settings.authenticity import AuthenticitySettings
from coordinator.settings.identity import IdentitySettings
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import NodeId
from protocol.messages import ModelOffer


class Membership:
    """Who is connected, who sits an exam, who is removed, and the events due in simulated time."""

    def __init__(self, scenario: Scenario, recording: Recording, seed: int) -> None:
        self.scenario = scenario
        self.recording = recording
        self.rng = random.Random(seed)
        self.authenticity = AuthenticitySettings()
        self.points = PointsConstants()
        self.identity = IdentitySettings()
        self.limits = EnrollmentLimits(
            new_nodes_per_day=self.identity.new_nodes_per_day_per_operator,
            offender_window=timedelta(days=self.points.offender_window_days),
        )
        self.router = Router()
        self.admission = Admission(
            self.router, self.authenticity.exam_checks if scenario.exam else 0,
            lambda model: model == MODEL,
            enrollment_required=self.identity.paid_requires_enrollment,
        )
        self.now = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.serial = 0
        self.live: dict[NodeId, Identity] = {}
        self.identities: list[Identity] = []
        self.sitting: set[NodeId] = set()  # checks due (the scheduler asks Admission.due)
        self.enrolled_at: dict[str, deque[float]] = {}
        self.removed_at: dict[str, float] = {}
        self.fully_trusted: set[NodeId] = set()
        self.removed_ids: set[NodeId] = set()
        self.tally = Tally()

    def at(self, when: float, action: Callable[[], None]) -> None:
        self.serial += 1
        heapq.heappush(self.events, (when, self.serial, action))

    # --- connecting and leaving -------------------------------------------------------------------

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

    # --- removal ----------------------------------------------------------------------------------

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

    def update_sitting(self, node_id: NodeId) -> None:
        if node_id in self.live and self.admission.due(node_id, [MODEL]):
            self.sitting.add(node_id)
        else:
            self.sitting.discard(node_id)

