"""Stop sequences over streamed text: never emit text that may turn out to start a stop."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add generated text; returns the text safe to emit and whether a stop was hit."""
        held = self._held + text
        # The stop completed first wins (on a tie, the longer one), so where the text is cut
        # does not depend on how the engine's tokens happened to split it.
        hits = [(i + len(s), i) for s in self._stops if (i := held.find(s)) >= 0]
        if hits:
            self._held = ""
            return held[: min(hits)[1]], True
        keep = _longest_stop_prefix_suffix(held, self._stops)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep], False

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def _longest_stop_prefix_suffix(text: str, stops: Sequence[str]) -> int:
    best = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:length]):
                best = length
                break
    return best
