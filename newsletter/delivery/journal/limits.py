"""Rate limits that hold across connections and restarts: at most `count` claims in any `window` seconds.

Every claim's time is also stored in the journal, so a restarted send starts from the claims of the last hour
rather than from zero; the check itself runs on the in-memory copy, without a query per claim.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """At most `count` claims in any `window` seconds (plus `slack`, so delivery jitter cannot bunch them)."""

    count: int
    window: float
    slack: float = 0.1


class RateLimiter:
    """The recent claim times, and the wait each limit imposes on the next claim."""

    def __init__(self, limits: tuple[RateLimit, ...], history: Iterable[float] = ()) -> None:
        """`history`: earlier claim times, oldest first (only the newest `max(count)` matter)."""
        self.limits = limits
        self._recent: collections.deque[float] = collections.deque(
            history, maxlen=max((limit.count for limit in limits), default=0)
        )

    def wait(self, now: float) -> float:
        """Seconds until one more claim fits within every limit (0 when it fits now)."""
        wait = 0.0
        for limit in self.limits:
            if len(self._recent) >= limit.count:
                oldest = self._recent[-limit.count]  # the oldest of the last `count` claims
                span = limit.window + limit.slack
                if oldest > now - span:
                    wait = max(wait, oldest + span - now)
        return wait

    def record(self, now: float) -> None:
        if self.limits:
            self._recent.append(now)

    @property
    def keeps(self) -> int:
        """How many of the newest claim times the limits need: the history a restart reads, and no more."""
        return self._recent.maxlen or 0

    @property
    def longest_window(self) -> float:
        return max((limit.window + limit.slack for limit in self.limits), default=0.0)
