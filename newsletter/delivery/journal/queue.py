"""The recipients a run claims next: a bounded window over the journal's pending rows, never the whole list.

The window holds at most `size` rows read ahead in list order, plus up to `retry_limit` recipients waiting out a
retry delay (a greylisting domain, a full mailbox). Past that limit a retry stays in the journal only, with its
due time, and is found again by a second pass over the pending rows once the first has run dry. So memory stays
the same for a list of a thousand and of ten million.
"""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass, replace

from ...base.model import Recipient

WINDOW = 256
RETRY_LIMIT = 10_000


@dataclass(frozen=True)
class Pending:
    """A pending journal row, ready to be claimed."""

    id: int
    key: str
    recipient: Recipient
    message_id: str
    attempts: int
    not_before: float


class PendingWindow:
    """Rows read ahead from the journal (`cursor` is the last id read) and retries waiting for their time."""

    def __init__(self, size: int = WINDOW, retry_limit: int = RETRY_LIMIT) -> None:
        self.size = size
        self.retry_limit = retry_limit
        self.cursor = 0
        self._fresh: collections.deque[Pending] = collections.deque()
        self._retries: list[tuple[float, int]] = []  # (due, id); an id no longer in _waiting was dropped
        self._waiting: dict[int, Pending] = {}
        self._overflowed = False  # some retries are only in the journal: look again once the rows run out

    @property
    def held(self) -> int:
        """How many rows are in memory: never more than size + retry_limit."""
        return len(self._fresh) + len(self._waiting)

    @property
    def empty(self) -> bool:
        return not self._fresh

    def add(self, rows: list[Pending], now: float, read_to: int) -> None:
        """Rows just read from the journal, from after `cursor` to `read_to`: due ones to hand out, the others
        to wait."""
        self.cursor = max(self.cursor, read_to)
        for row in rows:
            if row.id in self._waiting:
                continue  # a second pass meets the retries it already holds
            if row.not_before > now:
                self._wait(row)
            else:
                self._fresh.append(row)

    def next_due(self, now: float) -> Pending | None:
        """The recipient to claim: one whose retry delay is over first, else the next in list order."""
        while self._retries and self._retries[0][0] <= now:
            row = self._waiting.pop(heapq.heappop(self._retries)[1], None)
            if row is not None:
                return row
        return self._fresh.popleft() if self._fresh else None

    def retry(self, row: Pending, due: float, charged: bool) -> None:
        """Put a claimed recipient back, to be claimed again from `due` on."""
        self._wait(replace(row, attempts=row.attempts + int(charged), not_before=due))

    def drop(self, row_ids: set[int]) -> None:
        """Never hand these out (they left the list during the run)."""
        if any(row.id in row_ids for row in self._fresh):
            self._fresh = collections.deque(row for row in self._fresh if row.id not in row_ids)
        for row_id in row_ids:
            self._waiting.pop(row_id, None)

    def rewind(self) -> bool:
        """When the read-ahead has reached the end and retries were left in the journal only: start a second
        pass from the first row. False when there is no reason to."""
        if not self._overflowed or self._waiting:
            return False
        self._overflowed, self.cursor = False, 0
        return True

    def wait(self, now: float) -> float | None:
        """Seconds until the next retry falls due when nothing is due now; None when nobody is left at all."""
        while self._retries and self._retries[0][1] not in self._waiting:
            heapq.heappop(self._retries)
        if self._retries:
            return max(self._retries[0][0] - now, 0.001)
        return 0.001 if self._overflowed else None

    def _wait(self, row: Pending) -> None:
        if len(self._waiting) >= self.retry_limit:
            self._overflowed = True
            return
        self._waiting[row.id] = row
        heapq.heappush(self._retries, (row.not_before, row.id))
