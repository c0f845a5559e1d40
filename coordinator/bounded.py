"""A mapping that keeps only its most recently used entries.

For what the coordinator remembers per node or per caller where an entry not touched for long
will not be asked for again (a departed node's payee, a node's answer count): the memory stays
bounded however many come and go.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")


class BoundedLRU(Generic[K, V]):
    """At most ``max_size`` entries; storing one more evicts the least recently used.

    Storing an entry or reading it (:meth:`get`, ``[]``) makes it the most recently used;
    ``in`` and :meth:`keys` do not.
    """

    __slots__ = ("_entries", "_max_size")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        self._max_size = max_size
        self._entries: OrderedDict[K, V] = OrderedDict()

    @property
    def max_size(self) -> int:
        return self._max_size

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_size:
            self._entries.popitem(last=False)

    def __getitem__(self, key: K) -> V:
        value = self._entries[key]
        self._entries.move_to_end(key)
        return value

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The entry's value (now the most recently used), or ``default`` when absent."""
        if key not in self._entries:
            return default
        return self[key]

    def pop(self, key: K, default: D) -> V | D:
        """Remove the entry and return its value, or ``default`` when absent."""
        return self._entries.pop(key, default)

    def __delitem__(self, key: K) -> None:
        del self._entries[key]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        return list(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys())
