"""Request limits: rate buckets per API key and per client IP, concurrent streams per key.

    rates.py      the pure rule (GCRA: one "theoretical arrival time" per bucket) and the tiny
                  ``RateStore`` interface with its in-memory implementation
    streams.py    concurrent streams per key (``StreamGate``)
    client_ip.py  who the client is, honouring X-Forwarded-For only from trusted proxies
    ``LimitSettings`` (``KORETEX_LIMITS__*``) lives with the other settings in coordinator/settings
    enforce.py    what handlers call: ``limit_key``, ``limit_ip``, ``stream_slot``
"""

from coordinator.limits.rates import InMemoryRates, RateStore, RetryAfter, gcra
from coordinator.limits.streams import InMemoryStreams, StreamGate
from coordinator.settings.limits import LimitSettings

__all__ = [
    "InMemoryRates",
    "InMemoryStreams",
    "LimitSettings",
    "RateStore",
    "RetryAfter",
    "StreamGate",
    "gcra",
]
