"""The admission exam carried out: which connected nodes may take paid jobs for which models.

:class:`~coordinator.hub.exam.AdmissionExam` decides; :class:`Admission` tells the router. A
node that joins serving a model with a fingerprint is held back from paid jobs for it until it has
passed ``exam_checks`` fingerprint probes (which the probe scheduler sends at once, and which look
like any other probe); a fake verdict, from a probe or from re-scoring a paid job, holds it back
again at once until it passes a full re-exam. A model without a fingerprint cannot be examined and
is not held. Where enrollment is required, a node nobody enrolled is held from every paid job
whatever its exam (it is still probed, and sits the exam, so its operator sees its speed). Other
replicas learn of a hold from the node's presence; a fake verdict given here on a node connected
to another replica (re-scoring a relayed job) is kept in :meth:`Admission.fakes_for_owners` for
this replica's presence, and its owner quarantines the node when it reads it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable

from coordinator.hub.exam import AdmissionExam, ExamState, paid_allowed
from coordinator.routing import Router
from protocol.ids import ModelId, NodeId
from protocol.messages import ModelOffer

log = logging.getLogger(__name__)


class Admission:
    def __init__(
        self, router: Router, required: int, examined: Callable[[ModelId], bool],
        *, enrollment_required: bool = False,
    ) -> None:
        self._router = router
        self._exam = AdmissionExam(required=required)
        self._examined = examined if required > 0 else (lambda model: False)
        self._enrollment_required = enrollment_required
        self._unenrolled: set[NodeId] = set()
        self.fakes_serial = 0  # fake verdicts given here on nodes connected elsewhere, so far
        self._fakes_for_owners: deque[tuple[int, NodeId, ModelId]] = deque(maxlen=256)

    def joined(
        self, node_id: NodeId, offers: Iterable[ModelOffer], *, enrolled: bool = True
    ) -> None:
        """A node connected here: hold each examined model until the node passes its exam,
        and every model of a node nobody enrolled where enrollment is required."""
        if enrolled:
            self._unenrolled.discard(node_id)
        else:
            self._unenrolled.add(node_id)
        for offer in offers:
            if not self._examined(offer.model):
                self._apply(node_id, offer.model, ExamState.ADMITTED)
                continue
            state = self._exam.enrol(node_id, offer.model, offer.weights_sha256 or "")
            self._apply(node_id, offer.model, state)

    def left(self, node_id: NodeId) -> None:
        """The node disconnected: its next connection sits the exam again."""
        self._exam.forget(node_id)
        self._unenrolled.discard(node_id)

    def verdict(self, node_id: NodeId, model: ModelId, *, genuine: bool) -> None:
        """A fingerprint or re-scoring verdict on the node's answer for ``model``."""
        if not self._examined(model):
            return
        if not self._exam.enrolled(node_id, model):  # connected to another replica, or gone
            if not genuine:
                self.fakes_serial += 1
                self._fakes_for_owners.append((self.fakes_serial, node_id, model))
            return
        before = self._exam.state(node_id, model)
        state = self._exam.record(node_id, model, genuine=genuine)
        if state is not before:
            log.info("node %s, model %s: %s -> %s", node_id, model, before.value, state.value)
        self._apply(node_id, model, state)

    def fakes_for_owners(self) -> tuple[tuple[int, NodeId, ModelId], ...]:
        """The latest fake verdicts given here on nodes not connected here: (serial, node,
        model), for their owners to apply."""
        return tuple(self._fakes_for_owners)

    def due(self, node_id: NodeId, models: Iterable[ModelId]) -> list[ModelId]:
        """The models among ``models`` the node still has to pass fingerprint checks for."""
        return sorted(
            model for model in models
            if self._examined(model) and self._exam.checks_due(node_id, model) > 0
        )

    def state(self, node_id: NodeId, model: ModelId) -> ExamState:
        return self._exam.state(node_id, model)

    def paid_allowed(self, node_id: NodeId, model: ModelId) -> bool:
        """Whether the node may take paid jobs for ``model`` (exam passed, enrolled if asked)."""
        return paid_allowed(
            self._exam.state(node_id, model), enrolled=node_id not in self._unenrolled,
            enrollment_required=self._enrollment_required,
        )

    def _apply(self, node_id: NodeId, model: ModelId, state: ExamState) -> None:
        if paid_allowed(
            state, enrolled=node_id not in self._unenrolled,
            enrollment_required=self._enrollment_required,
        ):
            self._router.admit_paid(node_id, model)
        else:
            self._router.hold_paid(node_id, model)
