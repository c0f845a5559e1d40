"""Whether the models an agent is asked to serve fit this machine's memory, before any loads.

Each model needs its weights plus a KV cache for every slot at the context it will offer. The sum
must stay within the memory available now, less a headroom left for the system: a node that
swaps serves slower than the network's floor, and one killed for memory drops its jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.errors import ConfigurationError
from agent.weights_info import WeightsInfo

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Planned:
    model_id: str
    info: WeightsInfo
    context_length: int  # the context this node offers it with


def offered_context(info: WeightsInfo, configured: int) -> int:
    """The context a node offers: what it is configured for, never past what the weights know."""
    return min(configured, info.context_length)


def check_fit(
    planned: Sequence[Planned], *, slots: int, available_bytes: int, headroom_bytes: int
) -> int:
    """The bytes the plan needs; a :class:`ConfigurationError` naming the numbers if it does not
    fit. Slots are shared between the models, so each model's cache is sized for all of them."""
    needs = sum(p.info.memory_for(p.context_length, slots) for p in planned)
    budget = available_bytes - headroom_bytes
    if needs > budget:
        parts = ", ".join(
            f"{p.model_id} {p.info.size_bytes // MIB} MiB weights + "
            f"{p.info.kv_bytes_per_token * p.context_length * slots // MIB} MiB cache "
            f"({slots} slot(s) x {p.context_length} tokens)"
            for p in planned
        )
        raise ConfigurationError(
            f"the models do not fit in memory: they need {needs // MIB} MiB ({parts}), but "
            f"{available_bytes // MIB} MiB is available less {headroom_bytes // MIB} MiB "
            "headroom; serve fewer models, fewer --slots or a smaller --context-length"
        )
    return needs
