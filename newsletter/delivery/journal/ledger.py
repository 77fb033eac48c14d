"""A send journal opened for a run: the durable store, the window of pending rows, the intake of the list, and
the rate limiter, together.

The send loop calls `advance` with the steps of every connection that is ready; one transaction records their
outcomes and claims their next recipients (group commit). Claims come from the window, which reads the next
rows from the store when it runs dry (and the store reads the next chunk of the list file when it has none),
checking them against the suppression store a batch at a time. What a run holds in memory is the window and
the claims in flight, whatever the size of the list.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ...audience.exclusions import Exclusions
from ...base.model import Recipient
from .intake import Intake
from .limits import RateLimit, RateLimiter
from .queue import Pending, PendingWindow
from .states import Claim, Outcome, State, Step, Wait
from .store import JournalStore

SLOT_HISTORY_SECONDS = 3600.0


class Journal:
    """One run's view of an edition's journal: `advance` is all the send loop needs."""

    def __init__(self, store: JournalStore, limits: tuple[RateLimit, ...], intake: Intake | None = None,
                 exclusions: Exclusions | None = None, window: PendingWindow | None = None) -> None:  # fmt: skip
        now = time.time()
        self.store = store
        self.intake = intake
        self.exclusions = exclusions
        self.window = window or PendingWindow()
        self.in_flight: dict[int, Pending] = {}  # claimed, not yet finished: at most one per connection
        self.skipped = 0  # recipients this run found suppressed
        sizing = RateLimiter(limits)
        since = now - max(SLOT_HISTORY_SECONDS, sizing.longest_window) - 60
        self.limiter = RateLimiter(limits, store.claim_history(since, sizing.keeps))

    @property
    def path(self) -> Path:
        return self.store.path

    def advance(self, steps: list[Step]) -> list[Claim | Wait | None]:
        """Apply several connections' steps in one durable commit.

        Each answer is the new Claim; or, when a rate limit is reached or every pending recipient is waiting out
        a retry delay, how long to wait before asking again; or None when nobody is left (or none was asked).
        """
        now = time.time()
        finished: list[tuple[int, Outcome]] = []
        claimed: list[int] = []
        answers: list[Claim | Wait | None] = []
        for step in steps:
            if step.finished is not None and step.outcome is not None:
                finished.append((step.finished.id, step.outcome))
                row = self.in_flight.pop(step.finished.id)
                if step.outcome.state == State.PENDING:
                    self.window.retry(row, now + step.outcome.retry_in, step.outcome.charge_attempt)
            answers.append(self._claim(now, claimed) if step.claim_next else None)
        self.store.commit(finished, claimed, now)
        return answers

    def skip(self, keys: set[str]) -> int:
        """Never send to these mailboxes (they left the list during the run): recorded as skipped, and no
        longer handed out. Returns how many of them were still to send."""
        if not keys:
            return 0
        skipped = self.store.skip(list(keys))
        self.window.drop(set(skipped))
        self.skipped += len(skipped)
        return len(skipped)

    def total(self) -> int:
        """Recipients in the journal, and about how many more the rest of the list file holds."""
        return sum(self.store.counts().values()) + (self.intake.remaining() if self.intake else 0)

    def _claim(self, now: float, claimed: list[int]) -> Claim | Wait | None:
        wait = self.limiter.wait(now)
        if wait > 0:
            return Wait(wait)
        row = self.window.next_due(now)
        if row is None:
            self._refill(now)
            row = self.window.next_due(now)
        if row is None:
            retry_in = self.window.wait(now)
            return None if retry_in is None else Wait(retry_in)
        self.limiter.record(now)
        claimed.append(row.id)
        self.in_flight[row.id] = row
        return Claim(row.id, row.recipient, row.message_id, row.attempts)

    def _refill(self, now: float) -> None:
        """Read the next pending rows into the window: from the store, from the list file when the store has
        none, and once more from the first row when retries were left in the store only."""
        rewound = False
        while self.window.empty:
            rows = self.store.pending_after(self.window.cursor, self.window.size)
            if rows:
                self.window.add(self._admit(rows), now, read_to=rows[-1][0])
            elif self.intake is not None and not self.intake.finished:
                self.intake.fill()
            elif not rewound and self.window.rewind():
                rewound = True
            else:
                return

    def _admit(self, rows: list[tuple]) -> list[Pending]:
        """The rows as claimable recipients, less those suppressed since they were added (marked skipped)."""
        pending = [
            Pending(row_id, key, Recipient(email, name, json.loads(fields), line), message_id, attempts, not_before)
            for row_id, key, email, name, fields, line, message_id, attempts, not_before in rows
            if row_id not in self.in_flight  # a second pass reads rows claimed a moment ago, not yet committed
        ]
        suppressed = self.exclusions.among(row.key for row in pending) if self.exclusions else set()
        if not suppressed:
            return pending
        self.skip(suppressed)
        return [row for row in pending if row.key not in suppressed]
