"""The pending recipients of one run, in memory: the next never-tried one, or a retry whose delay is over.

Loaded once from the journal when a run starts; from then on claims come from here, so a commit only writes.
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Iterable


class PendingQueue:
    """Row ids in list order, plus a heap of (due time, id) for recipients waiting out a retry delay."""

    def __init__(self, rows: Iterable[tuple[int, int, float]], now: float) -> None:
        """`rows` are (id, attempts so far, not before) of every pending recipient, in list order."""
        self._fresh: collections.deque[int] = collections.deque()
        self._retries: list[tuple[float, int]] = []
        self._dropped: set[int] = set()
        self.attempts: dict[int, int] = {}
        for row_id, attempts, not_before in rows:
            self.attempts[row_id] = attempts
            if not_before > now:
                heapq.heappush(self._retries, (not_before, row_id))
            else:
                self._fresh.append(row_id)

    def next_due(self, now: float) -> int | None:
        """The recipient to claim: one whose retry delay is over first, else the next never tried."""
        while True:
            if self._retries and self._retries[0][0] <= now:
                row_id = heapq.heappop(self._retries)[1]
            elif self._fresh:
                row_id = self._fresh.popleft()
            else:
                return None
            if row_id not in self._dropped:
                return row_id

    def drop(self, row_ids: list[int]) -> None:
        """Never hand these out (they unsubscribed during the run)."""
        self._dropped.update(row_ids)

    def retry(self, row_id: int, due: float, charged: bool) -> None:
        """Put a recipient back, to be claimed again from `due` on."""
        self.attempts[row_id] += int(charged)
        heapq.heappush(self._retries, (due, row_id))

    def wait(self, now: float) -> float | None:
        """Seconds until the next retry falls due when nothing is due now; None when nobody is left at all."""
        return max(self._retries[0][0] - now, 0.001) if self._retries else None

    def __len__(self) -> int:
        return len(self._fresh) + len(self._retries)
