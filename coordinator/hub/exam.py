"""The admission exam: which (node, model) pairs may take paid jobs.

A node earns paid traffic for a model by passing ``required`` fingerprint checks for it, on the
weights it claims (their sha256), within the current connection. The first fake verdict
quarantines the pair: its passes are forgotten and it sits the exam again. A new weights identity
(another sha256 for the same model) is a new exam. Pure: callers feed verdicts in and read
:meth:`AdmissionExam.admitted`; the scheduler and the router carry the result out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from protocol.ids import ModelId, NodeId


class ExamState(Enum):
    SITTING = "sitting"  # fewer than ``required`` passes so far: probes only
    ADMITTED = "admitted"  # passed: paid jobs allowed
    QUARANTINED = "quarantined"  # a fake verdict since the last admission: probes only


@dataclass(slots=True)
class _Sitting:
    sha256: str
    passes: int = 0
    quarantined: bool = False


@dataclass(slots=True)
class AdmissionExam:
    """Exam state of every connected (node, model); ``required`` of 0 admits everyone."""

    required: int
    _pairs: dict[tuple[NodeId, ModelId], _Sitting] = field(default_factory=dict)

    def enrol(self, node_id: NodeId, model: ModelId, sha256: str) -> ExamState:
        """A node (re)connects serving ``model`` as ``sha256``: a changed identity starts over."""
        key = (node_id, model)
        sitting = self._pairs.get(key)
        if sitting is None or sitting.sha256 != sha256:
            self._pairs[key] = _Sitting(sha256)
        return self.state(node_id, model)

    def forget(self, node_id: NodeId) -> None:
        """The node left: its next connection sits the exam again."""
        for key in [key for key in self._pairs if key[0] == node_id]:
            del self._pairs[key]

    def record(self, node_id: NodeId, model: ModelId, *, genuine: bool) -> ExamState:
        """A fingerprint verdict: a genuine one counts toward the exam, a fake one quarantines."""
        sitting = self._pairs.get((node_id, model))
        if sitting is None:
            return ExamState.SITTING
        if genuine:
            sitting.passes += 1
            if sitting.passes >= self.required:
                sitting.quarantined = False
        else:
            sitting.passes = 0
            sitting.quarantined = True
        return self.state(node_id, model)

    def enrolled(self, node_id: NodeId, model: ModelId) -> bool:
        return (node_id, model) in self._pairs

    def state(self, node_id: NodeId, model: ModelId) -> ExamState:
        sitting = self._pairs.get((node_id, model))
        if sitting is None:
            return ExamState.ADMITTED if self.required <= 0 else ExamState.SITTING
        if sitting.quarantined:
            return ExamState.QUARANTINED
        if sitting.passes >= self.required:
            return ExamState.ADMITTED
        return ExamState.SITTING

    def admitted(self, node_id: NodeId, model: ModelId) -> bool:
        """Whether the node may take a paid job for ``model``."""
        return self.state(node_id, model) is ExamState.ADMITTED

    def checks_due(self, node_id: NodeId, model: ModelId) -> int:
        """How many more genuine verdicts admit the pair (0 when admitted)."""
        sitting = self._pairs.get((node_id, model))
        if sitting is None:
            return 0 if self.required <= 0 else self.required
        if sitting.quarantined:
            return self.required
        return max(0, self.required - sitting.passes)


def paid_allowed(state: ExamState, *, enrolled: bool, enrollment_required: bool) -> bool:
    """Whether a (node, model) in ``state`` may take paid jobs: it passed its exam and, where
    the network asks it, its node is enrolled to an operator's account."""
    return state is ExamState.ADMITTED and (enrolled or not enrollment_required)
