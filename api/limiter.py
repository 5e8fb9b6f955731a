"""The in-process backstop for rate limits while Redis is unreachable."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LocalLimiter:
    """Fixed one-minute windows counted in this process: the backstop while Redis is unreachable."""

    window: int = -1
    counts: dict[str, int] = field(default_factory=dict)

    def incr(self, key: str, window: int) -> int:
        if window != self.window:  # a new minute: forget the last one
            self.window, self.counts = window, {}
        count = self.counts[key] = self.counts.get(key, 0) + 1
        return count
