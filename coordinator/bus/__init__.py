"""Between replicas: presence, relayed jobs, leader leases and shared counters.

``open_bus(settings)`` gives the in-process bus when no Redis is configured, else the Redis one.
"""

from __future__ import annotations

from coordinator.bus.base import Bus, NodePresence, ReplicaPresence
from coordinator.bus.leader import run_as_leader
from coordinator.bus.local import LocalBus
from coordinator.settings.bus import BusSettings


def open_bus(redis_url: str | None, settings: BusSettings) -> Bus:
    """The bus the settings choose: Redis when ``redis_url`` is set, else in-process."""
    if redis_url is None:
        return LocalBus(settings.replica_id or "local")
    from coordinator.bus.redis import RedisBus

    return RedisBus(redis_url, settings)


__all__ = [
    "Bus", "BusSettings", "LocalBus", "NodePresence", "ReplicaPresence", "open_bus",
    "run_as_leader",
]
