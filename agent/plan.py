"""What this node will serve: each model resolved, at the context it can offer, checked to fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from agent.fit import MIB, Planned, check_fit, offered_context
from agent.models import ResolvedModel
from agent.settings import AgentSettings
from agent.weights_info import describe


@dataclass(frozen=True, slots=True)
class Served:
    """A model this node serves: its weights and the context it offers them with."""

    model: ResolvedModel
    context_length: int


def plan(
    settings: AgentSettings, models: Sequence[ResolvedModel], available_bytes: int | None = None
) -> tuple[Served, ...]:
    """Each model at ``min(--context-length, the weights' own context)``; a clear error, before
    anything loads, when they do not fit the memory available now less the headroom."""
    planned = []
    for model in models:
        info = describe(model.path)
        planned.append(Planned(
            model.model_id, info, offered_context(info, settings.context_length)
        ))
    check_fit(
        planned, slots=settings.slots,
        available_bytes=psutil.virtual_memory().available if available_bytes is None
        else available_bytes,
        headroom_bytes=settings.memory_headroom_mb * MIB,
    )
    return tuple(Served(model, p.context_length) for model, p in zip(models, planned, strict=True))
