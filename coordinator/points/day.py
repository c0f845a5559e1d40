"""The daily fold: every node's score for one UTC day, from the history and the constants.

Decisions the product page leaves open, made here:

* A node appears in a day's results if it has any contribution that day; a node with none
  earns nothing and is left out.
* Hardware uses the median of the day's measurements; with none that day, the last day's median
  before it; never measured, 0.
* Collapse applies to the whole model value (every token the node served is suspect), on each
  day holding a fake-model verdict. The lasting consequence is trust: a fake verdict sends trust
  back to trust_start on that very day and the ramp starts again the day after.
* A clean day is one without a penalty (no fake verdict, no failed checks beyond the allowance,
  no direct penalty). Trust counts clean calendar days since the node was first seen (or since its
  last fake verdict), before the day being scored; penalty days pause the ramp. Days offline are
  not held against a node: the ramp is about standing over time, uptime already gates earnings.
  ``clean_days`` is reported up to the ramp's length (counting stops once trust is full).
* Removal is permanent: a node whose fake verdicts reach offender_fake_verdicts within
  offender_window_days is ``removed`` from the day that happens. It keeps that day's score
  (collapse and penalties included); on later days it earns nothing, and any penalties still count.
* Day scores may be negative. Per operator, non-negative scores weigh 1, decay, decay², … best
  first (ties by node id); negative scores weigh 1, so penalties are never diluted by a farm.
  Totals are clamped at zero only when summed over a range (see :mod:`coordinator.points.board`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from coordinator.contributions import DAY_S, NodeFacts, OperatorId, day_number
from coordinator.points import terms
from coordinator.points.history import History, NodeDay, from_day_number, to_day_number
from coordinator.settings.points_constants import PointsConstants
from protocol.ids import ModelId, NodeId


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeTerms:
    """Every term of one node's score for one day, before its operator's diminishing returns."""

    day: date
    node_id: NodeId
    operator: OperatorId
    online_s: float
    online_fraction: float
    probes_passed: int
    probes_failed: int
    jobs_completed: int
    jobs_failed: int
    pass_rate: float
    uptime: float
    measured_tok_s: float | None
    measured_today: bool
    hardware: float
    tokens: int
    models_served: tuple[ModelId, ...]
    extra_models: int
    model_value: float
    collapsed: bool
    clean_days: int
    trust: float
    fake_verdicts: int
    penalties: float
    penalty_reasons: tuple[str, ...]
    removed: bool
    score: float


@dataclass(frozen=True, slots=True)
class NodeDayScore:
    """One node's day: its terms, its rank among its operator's nodes that day (``None`` for a
    negative score) and the weight and weighted score its operator keeps."""

    terms: NodeTerms
    operator_rank: int | None
    operator_weight: float
    weighted_score: float

    @property
    def node_id(self) -> NodeId:
        return self.terms.node_id

    @property
    def operator(self) -> OperatorId:
        return self.terms.operator

    @property
    def score(self) -> float:
        return self.terms.score


@dataclass(frozen=True, slots=True)
class DayResult:
    """Every active node's score for one UTC day under one version of the constants."""

    day: date
    constants_version: str
    in_demand: frozenset[ModelId]
    nodes: tuple[NodeDayScore, ...]

    def operator_points(self) -> dict[OperatorId, float]:
        """Each operator's weighted total for the day (may be negative)."""
        totals: dict[OperatorId, float] = {}
        for node in self.nodes:
            totals[node.operator] = totals.get(node.operator, 0.0) + node.weighted_score
        return totals


def removal_day(fake_times: Sequence[float], constants: PointsConstants) -> date | None:
    """The day a node caught at ``fake_times`` (ascending) becomes a persistent offender."""
    number = _removal_number(fake_times, constants)
    return None if number is None else from_day_number(number)


def _removal_number(fake_times: Sequence[float], constants: PointsConstants) -> int | None:
    needed = constants.offender_fake_verdicts
    window_s = constants.offender_window_days * DAY_S
    for last in range(needed - 1, len(fake_times)):
        if fake_times[last] - fake_times[last - needed + 1] < window_s:
            return day_number(fake_times[last])
    return None


def removed_nodes(history: History, constants: PointsConstants, as_of: date) -> dict[NodeId, date]:
    """Nodes removed for good by ``as_of`` (inclusive), with the day each was removed: the
    coordinator disconnects and refuses them."""
    cutoff = to_day_number(as_of)
    removed: dict[NodeId, date] = {}
    for node_id in history.caught_nodes():
        number = _removal_number(history.fake_times_of(node_id), constants)
        if number is not None and number <= cutoff:
            removed[node_id] = from_day_number(number)
    return removed


def _is_unclean(node_day: NodeDay, constants: PointsConstants) -> bool:
    charged = terms.penalties(
        len(node_day.fake_verdicts), node_day.probes_failed, node_day.penalty_points, constants
    )
    return charged > 0.0 or bool(node_day.fake_verdicts) or bool(node_day.penalty_reasons)


def clean_days(
    history: History, node_id: NodeId, first_seen: float, day: date, constants: PointsConstants
) -> int:
    """Clean days behind the node on ``day`` that count toward its trust ramp: since it was first
    seen or last caught faking, not counting penalty days, and at most the ramp's length."""
    return _clean_days(history, node_id, day_number(first_seen), to_day_number(day), constants)


def _clean_days(
    history: History, node_id: NodeId, first_seen: int, number: int, constants: PointsConstants
) -> int:
    full = math.ceil(constants.trust_ramp_days)
    start = first_seen
    fake_times = history.fake_times_of(node_id)
    if fake_times:
        caught_by = bisect_left(fake_times, (number + 1) * DAY_S)
        if caught_by:
            last_fake = day_number(fake_times[caught_by - 1])
            if last_fake == number:
                return 0
            start = max(start, last_fake + 1)
    if number <= start:
        return 0
    # Walk back from the day: gaps between suspect days are clean; stop once the ramp is full.
    clean = 0
    cursor = number
    for suspect in reversed(history.suspect_days_between(node_id, start, number)):
        clean += cursor - suspect - 1
        if clean >= full:
            return full
        if not _is_unclean(history.node_days_on(suspect)[node_id], constants):
            clean += 1
        cursor = suspect
    return min(full, clean + cursor - start)


def _node_terms(
    history: History,
    node_day: NodeDay,
    node_facts: NodeFacts,
    number: int,
    demand: frozenset[ModelId],
    constants: PointsConstants,
) -> NodeTerms:
    node_id = node_day.node_id
    online = terms.online_fraction(node_day.online_s)
    rate = terms.pass_rate(
        node_day.probes_passed,
        node_day.probes_failed,
        node_day.jobs_completed,
        node_day.jobs_failed,
    )
    uptime = terms.uptime(online, rate)
    tok_s, measured_today = history.measured_on(node_id, number)
    hardware = terms.hardware(tok_s)
    served = tuple(
        model for model, tokens in node_day.tokens_by_model if tokens > 0 and model in demand
    )
    extra = max(0, len(served) - 1)
    collapsed = bool(node_day.fake_verdicts)
    tokens = node_day.tokens
    value = terms.model_value(tokens, extra, collapsed, constants)
    clean = _clean_days(history, node_id, day_number(node_facts.first_seen), number, constants)
    trust = terms.trust(clean, constants)
    charged = terms.penalties(
        len(node_day.fake_verdicts), node_day.probes_failed, node_day.penalty_points, constants
    )
    fake_times = history.fake_times_of(node_id)
    removal = _removal_number(fake_times, constants) if fake_times else None
    earns = removal is None or number <= removal
    earned = terms.earnings(uptime, hardware, value, trust) if earns else 0.0
    return NodeTerms(
        day=node_day.day,
        node_id=node_id,
        operator=node_facts.operator,
        online_s=node_day.online_s,
        online_fraction=online,
        probes_passed=node_day.probes_passed,
        probes_failed=node_day.probes_failed,
        jobs_completed=node_day.jobs_completed,
        jobs_failed=node_day.jobs_failed,
        pass_rate=rate,
        uptime=uptime,
        measured_tok_s=tok_s,
        measured_today=measured_today,
        hardware=hardware,
        tokens=tokens,
        models_served=served,
        extra_models=extra,
        model_value=value,
        collapsed=collapsed,
        clean_days=clean,
        trust=trust,
        fake_verdicts=len(node_day.fake_verdicts),
        penalties=charged,
        penalty_reasons=node_day.penalty_reasons,
        removed=removal is not None and removal <= number,
        score=earned - charged,
    )


def _score_day(
    history: History,
    facts: Mapping[NodeId, NodeFacts],
    number: int,
    constants: PointsConstants,
) -> DayResult:
    day = from_day_number(number)
    node_days = history.node_days_on(number)
    network_tokens: dict[ModelId, int] = {}
    for node_day in node_days.values():
        for model, tokens in node_day.tokens_by_model:
            network_tokens[model] = network_tokens.get(model, 0) + tokens
    demand = terms.in_demand(network_tokens, constants)

    by_operator: dict[OperatorId, list[NodeTerms]] = {}
    for node_id in sorted(node_days):
        node_facts = facts.get(node_id)
        if node_facts is None:
            raise ValueError(f"node {node_id} has contributions on {day} but no facts")
        node_terms = _node_terms(history, node_days[node_id], node_facts, number, demand, constants)
        by_operator.setdefault(node_facts.operator, []).append(node_terms)

    scored: list[NodeDayScore] = []
    for operator_nodes in by_operator.values():
        scores = [node.score for node in operator_nodes]
        ranks = terms.operator_ranks(scores)
        for node, rank in zip(operator_nodes, ranks, strict=True):
            weight = terms.rank_weight(rank, constants.operator_decay)
            scored.append(NodeDayScore(node, rank, weight, node.score * weight))
    scored.sort(key=lambda node: node.node_id)
    return DayResult(day, constants.version, demand, tuple(scored))


def _facts_by_node(
    facts: Iterable[NodeFacts] | Mapping[NodeId, NodeFacts],
) -> Mapping[NodeId, NodeFacts]:
    if isinstance(facts, Mapping):
        return facts
    return {node.node_id: node for node in facts}


def compute_day(
    history: History,
    facts: Iterable[NodeFacts] | Mapping[NodeId, NodeFacts],
    day: date,
    constants: PointsConstants,
) -> DayResult:
    """Every node active on UTC ``day``, scored under ``constants``."""
    return _score_day(history, _facts_by_node(facts), to_day_number(day), constants)


def compute_range(
    history: History,
    facts: Iterable[NodeFacts] | Mapping[NodeId, NodeFacts],
    first: date,
    last: date,
    constants: PointsConstants,
) -> tuple[DayResult, ...]:
    """:func:`compute_day` for each UTC day from ``first`` to ``last`` inclusive."""
    if last < first:
        raise ValueError(f"range ends ({last}) before it starts ({first})")
    by_node = _facts_by_node(facts)
    return tuple(
        _score_day(history, by_node, number, constants)
        for number in range(to_day_number(first), to_day_number(last) + 1)
    )
