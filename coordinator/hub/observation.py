"""What the coordinator saw of each job attempt, and where those sightings go.

Every attempt on a node, paid or probe, ends in one :class:`JobObservation`. Observers (the
contribution recorder, the re-scoring sampler, probe judges) subscribe to ``Services.observers``;
they are called synchronously on the event loop and must only queue work, never await.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from coordinator.contributions import Contribution
from coordinator.routing.outcome import Outcome
from protocol.chat import TokenLogprob
from protocol.ids import NodeId
from protocol.messages import Job


@dataclass(frozen=True, slots=True)
class JobObservation:
    """One job attempt on one node, as measured by the coordinator (never as the node reports)."""

    node_id: NodeId
    job: Job
    probe: bool
    outcome: Outcome
    text: str
    logprobs: tuple[TokenLogprob, ...]
    tokens: int
    tok_s: float | None
    finished_at: float  # wall clock, epoch seconds
    self_dealt: bool = False
    """The consumer's account is the node's own payee: its tokens earn no points."""


Observer = Callable[[JobObservation], None]


class ContributionSink(Protocol):
    """Where contributions to the points history are appended."""

    def add(self, contribution: Contribution) -> None: ...


class InMemoryContributions:
    """A sink that keeps contributions in a list (until a stored history replaces it)."""

    def __init__(self) -> None:
        self.items: list[Contribution] = []

    def add(self, contribution: Contribution) -> None:
        self.items.append(contribution)
