"""A send journal opened for a run: the durable store, the in-memory queue and the rate limiter, together.

The send loop calls `advance` with the steps of every connection that is ready; one transaction records their
outcomes and claims their next recipients (group commit). Claims and rate checks run in memory; the store only
writes, so a commit is a few row updates and one fsync.
"""

from __future__ import annotations

import time
from pathlib import Path

from ...base.model import Recipient
from .limits import RateLimit, RateLimiter
from .queue import PendingQueue
from .states import Claim, Outcome, State, Step, Wait
from .store import JournalStore

SLOT_HISTORY_SECONDS = 3600.0


class Journal:
    """One run's view of an edition's journal: `advance` is all the send loop needs."""

    def __init__(self, store: JournalStore, rows: list[tuple[Recipient, str]], limits: tuple[RateLimit, ...]) -> None:
        """`rows` is the list the journal was started with (its fingerprint was checked), in the same order:
        a claim takes its recipient and Message-ID from memory by row id."""
        now = time.time()
        self.store = store
        self._rows = rows
        self.queue = PendingQueue(store.pending_rows(), now)
        history = store.claim_history(now - max(SLOT_HISTORY_SECONDS, RateLimiter(limits).longest_window) - 60)
        self.limiter = RateLimiter(limits, history)

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
                if step.outcome.state == State.PENDING:
                    self.queue.retry(step.finished.id, now + step.outcome.retry_in, step.outcome.charge_attempt)
            answers.append(self._claim(now, claimed) if step.claim_next else None)
        self.store.commit(finished, claimed, now)
        return answers

    def skip(self, keys: frozenset[str]) -> int:
        """Never send to these mailboxes (they left the list during the run): recorded as skipped, and no
        longer handed out. Returns how many of them were still to send."""
        if not keys:
            return 0
        skipped = self.store.skip_suppressed(keys)
        self.queue.drop(skipped)
        return len(skipped)

    def _claim(self, now: float, claimed: list[int]) -> Claim | Wait | None:
        wait = self.limiter.wait(now)
        if wait > 0:
            return Wait(wait)
        row_id = self.queue.next_due(now)
        if row_id is None:
            retry_in = self.queue.wait(now)
            return None if retry_in is None else Wait(retry_in)
        self.limiter.record(now)
        claimed.append(row_id)
        recipient, message_id = self._rows[row_id - 1]
        return Claim(row_id, recipient, message_id, self.queue.attempts[row_id])
