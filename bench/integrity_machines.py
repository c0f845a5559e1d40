"""The simulated population of ``bench/integrity.py``: machines, their node keys, the scenario.

A machine is one computer behind one operator account, honest or cheating; each connection of a
node key is an :class:`Identity`, whose fate the report reads. :class:`Tally` counts what the
whole network served and ruled. Nothing here decides: :mod:`integrity_membership` and
:mod:`integrity_network` play the coordinator's decisions over these.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from integrity_answers import SUBSTITUTES

from protocol.ids import ModelId, NodeId

MODEL = ModelId("gemma-3-270m")
DAY = 86_400.0
WALL0 = 1_780_000_000.0
RESTART_S = 2 * 3600.0  # an honest machine restarts (sleep, updates) and sits its exam again
Role = Literal["honest", "substitute", "probes-only"]


@dataclass
class Machine:
    """One computer behind one operator account; a cheater's may take a new key after another."""

    name: str
    role: Role
    operator: str
    probe_kind: str  # the recorded kind that answers its probes
    paid_kind: str  # the recorded kind that answers its paid jobs
    slots: int
    tok_s: float
    walks_away: bool = False  # leaves one fake verdict short of removal, for a new key
    node_id: NodeId | None = None
    serial: int = 0


@dataclass
class Identity:
    """One connection of a node key (a cheater's key connects once): what it served and when
    it was caught."""

    node_id: NodeId
    machine: Machine
    connected_at: float
    fingerprint_checks: int = 0  # fingerprint probes answered, decided or not
    first_fake_check: int | None = None
    first_fake_at: float | None = None
    fakes: list[float] = field(default_factory=list)
    paid_tokens: int = 0
    paid_answers: int = 0  # paid jobs answered (probation re-scores the first ones)
    ended: str = "connected at the end"


@dataclass
class Tally:
    paid_tokens: Counter[Role] = field(default_factory=Counter)
    unserved: int = 0
    honest_exams: int = 0  # exams sat by honest nodes (each connection, each re-exam)
    honest_reexams: int = 0  # of which sat after a peer disagreement
    honest_exam_checks: int = 0  # fingerprint verdicts on honest nodes while sitting one
    honest_verdicts: int = 0  # every fingerprint verdict on an honest node
    honest_quarantined: int = 0  # by a fake verdict on their own answer
    disagreements: Counter[Role] = field(default_factory=Counter)  # re-scoring, by peers
    corroborated: Counter[Role] = field(default_factory=Counter)  # disputes made verdicts
    rescored: int = 0
    unverified: int = 0


@dataclass(frozen=True)
class Scenario:
    honest: int
    substitutes: int
    probes_only: int
    hours: float
    load: float  # mean share of the honest nodes' slots busy with paid jobs
    exam: bool = True  # False: the control, as before the admission exam and quarantine


FULL = Scenario(honest=100, substitutes=10, probes_only=5, hours=24.0, load=0.5)
QUICK = Scenario(honest=30, substitutes=6, probes_only=2, hours=3.0, load=0.5)


def build_machines(
    scenario: Scenario, honest_kinds: tuple[str, ...], rng: random.Random
) -> list[Machine]:
    """The scenario's machines: honest ones two to an operator, each cheater its own operator."""
    honest = honest_kinds
    machines = [
        Machine(f"honest-{i}", "honest", f"op-h{i // 2}", honest[i % len(honest)],
                honest[i % len(honest)], rng.choice((1, 2, 4)), rng.choice((40.0, 80.0, 150.0)))
        for i in range(scenario.honest)
    ]
    machines += [
        Machine(f"sub-{i}", "substitute", f"op-s{i}", SUBSTITUTES[i % 3], SUBSTITUTES[i % 3],
                rng.choice((1, 2, 4)), rng.choice((40.0, 80.0, 150.0)), walks_away=i % 2 == 0)
        for i in range(scenario.substitutes)
    ]
    machines += [
        Machine(f"probes-only-{i}", "probes-only", f"op-p{i}", honest[0], SUBSTITUTES[i % 3],
                rng.choice((2, 4)), rng.choice((80.0, 150.0)))
        for i in range(scenario.probes_only)
    ]
    return machines
