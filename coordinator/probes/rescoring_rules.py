"""Re-scoring's rules: who may re-score whom, what a comparison's result does, and the
per-node bookkeeping (probation counts, peers' disputes) those decisions read.

Pure: no I/O, no clock of its own (``now`` is passed in). :mod:`coordinator.probes.rescoring`
gathers the facts from the hub and the router, calls these, and carries out the result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coordinator.bounded import BoundedLRU
from coordinator.settings.authenticity import AuthenticitySettings
from protocol.ids import NodeId


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the coordinator knows of a node that might re-score another node's answer."""

    node_id: NodeId
    operator: int | None
    """The account it is enrolled to; ``None`` when nobody enrolled it."""
    admitted: bool
    """Passed its admission exam for the model: it may take paid jobs for it."""
    trust: float
    """Its routing ramp fraction: 1.0 once it has been seen for the whole ramp."""
    scores: bool
    """It speaks the scoring protocol."""
    platform: bool = False
    """The platform vouches for it (``trusted_nodes`` / ``trusted_operators``)."""


def may_verify(candidate: Candidate, checked: NodeId, checked_payee: int | None) -> bool:
    """Whether ``candidate`` may re-score ``checked`` (paid to ``checked_payee``) as its peer:
    another node, enrolled to another operator, admitted for the model, at full trust."""
    return (
        candidate.scores and candidate.node_id != checked and candidate.operator is not None
        and candidate.operator != checked_payee and candidate.admitted and candidate.trust >= 1.0
    )


def eligible_verifiers(
    candidates: Iterable[Candidate], checked: NodeId, checked_payee: int | None,
    *, platform_configured: bool, probe: bool,
) -> list[Candidate]:
    """Who may re-score ``checked``'s answer: the platform's verifiers where any are configured
    (any of them but the node itself), else its peers (:func:`may_verify`), for paid answers
    only. A probe is the coordinator's own check already, and a peer's disagreement with a node
    sitting its exam (which takes probes only) would send the peer back to the exam for every
    exam answer the other node fails."""
    if platform_configured:
        return [c for c in candidates if c.platform and c.scores and c.node_id != checked]
    if probe:
        return []
    return [c for c in candidates if may_verify(c, checked, checked_payee)]


@dataclass(frozen=True, slots=True)
class Ruling:
    """What one re-scoring's comparison does."""

    verdict: bool | None
    """The authenticity verdict recorded on the checked node (genuine or not); ``None``: none."""
    reexamine: tuple[NodeId, ...]
    """Nodes sent back to a fingerprint re-exam for the model (held from paid jobs till then)."""


def ruling(
    genuine: bool | None, checked: NodeId, verifier: NodeId, *, platform: bool,
    corroborated: bool = False,
) -> Ruling:
    """The consequence of a comparison: the platform's verifier is believed (a fake verdict and
    a re-exam for the checked node); a peer's disagreement re-examines both and blames neither,
    unless peers of other operators disputed the node's answers too (``corroborated``): then the
    checked node gets a fake verdict; an undecided comparison, or a peer's agreement, does
    nothing."""
    if genuine is None:
        return Ruling(None, ())
    if platform:
        return Ruling(genuine, () if genuine else (checked,))
    if genuine:
        return Ruling(None, ())
    return Ruling(False if corroborated else None, (checked, verifier))


MAX_DISPUTED_NODES = 10_000


def rescore_chance(paid_answers_so_far: int, settings: AuthenticitySettings) -> float:
    """How likely a node's next paid answer is re-scored: every one on probation (its first
    ``rescore_probation_jobs``), then ``rescore_rate``."""
    if paid_answers_so_far < settings.rescore_probation_jobs:
        return 1.0
    return settings.rescore_rate


class AnswerCounts:
    """Paid answers seen per node, for probation; the most recent ``limit`` nodes kept."""

    def __init__(self, limit: int = 100_000) -> None:
        self._counts: BoundedLRU[NodeId, int] = BoundedLRU(limit)

    def seen(self, node_id: NodeId) -> int:
        """Count one more answer; how many came before it."""
        before = self._counts.get(node_id, 0)
        self._counts[node_id] = before + 1
        return before


class Disputes:
    """Peers' disagreements with each node's paid answers, by the peer's operator.

    A node that behaves for its probes and serves a substitute to paid jobs passes every
    fingerprint re-exam, so a disagreement alone would never stop it. It is disputed by every
    honest peer that draws one of its jobs, while an honest node is disputed only by a cheat:
    disputes from ``corroboration`` different operators within ``window_s`` make the verdict.
    """

    def __init__(self, corroboration: int, window_s: float) -> None:
        self._corroboration = corroboration
        self._window_s = window_s
        self._by_node: dict[NodeId, dict[int, float]] = {}

    def dispute(self, checked: NodeId, verifier_operator: int, now: float) -> bool:
        """Record a peer's disagreement; whether it is now corroborated (and starts afresh)."""
        operators = {
            operator: at for operator, at in self._by_node.get(checked, {}).items()
            if now - at <= self._window_s
        }
        operators[verifier_operator] = now
        if len(self._by_node) > MAX_DISPUTED_NODES:  # forget nodes disputed long ago
            self._by_node = {
                node: seen for node, seen in self._by_node.items()
                if now - max(seen.values()) <= self._window_s
            }
        if len(operators) >= self._corroboration:
            self._by_node.pop(checked, None)
            return True
        self._by_node[checked] = operators
        return False

    def __len__(self) -> int:
        return len(self._by_node)
