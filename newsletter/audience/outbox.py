"""The outbox of the subscriber store: confirmation and welcome mails waiting to be handed to the relay.

A sign-up writes its subscriber and its mail in one transaction before `serve` answers, and a task inside `serve`
empties the outbox: so a sign-up made while the SMTP server is down is mailed when it comes back, and one made
just before a `kill -9` is mailed after the restart. A mail is marked `sending` while it is handed over; one
still marked so at a restart was interrupted and goes again (with the same Message-ID). Temporary failures are
retried with a doubling delay (RETRY_FIRST up to RETRY_MOST) for RETRY_FOR; a permanent refusal ends it.
Every change is a transaction of its own, so a store busy with another process's write says StoreBusy.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ..base.database import sqlite_errors
from .subscribers import SubscriberStore

RETRY_FIRST = 5.0
RETRY_MOST = 3600.0
RETRY_FOR = 3 * 86400.0  # then a mail is given up: its link would be near its end anyway


@dataclass(frozen=True)
class Letter:
    """One mail to hand over: to whom, which kind (`confirm`, `welcome`), and when it was queued."""

    id: int
    kind: str
    address: str
    name: str
    queued: float
    attempts: int
    message_id: str


class Outbox:
    def __init__(self, store: SubscriberStore) -> None:
        self._store = store
        self._db = store._db

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_errors(self._store.path, "cannot use the subscriber store's outbox")

    def restart(self) -> int:
        """After a restart: mails that were being handed over go again; returns how many."""
        with self._store.transaction():
            return self._db.execute("UPDATE outbox SET state = 'waiting' WHERE state = 'sending'").rowcount

    def due(self, now: float, limit: int = 20) -> list[Letter]:
        """Mails whose time has come, marked `sending`; those whose subscriber is gone (forgotten) are dropped,
        and so are confirmations of subscribers no longer pending."""
        with self._store.transaction():
            rows = self._db.execute(
                "SELECT outbox.id, outbox.kind, subscribers.address, subscribers.name, outbox.created, "
                "outbox.attempts, outbox.message_id, subscribers.status FROM outbox LEFT JOIN subscribers "
                "ON subscribers.key = outbox.key WHERE outbox.state = 'waiting' AND outbox.due <= ? "
                "ORDER BY outbox.due LIMIT ?", (now, limit)).fetchall()  # fmt: skip
            dropped = [row[0] for row in rows if row[2] is None or (row[1] == "confirm" and row[7] != "pending")]
            self._db.executemany("UPDATE outbox SET state = 'dropped' WHERE id = ?", [(i,) for i in dropped])
            letters = [Letter(*row[:7]) for row in rows if row[0] not in dropped]
            self._db.executemany("UPDATE outbox SET state = 'sending' WHERE id = ?", [(x.id,) for x in letters])
        return letters

    def remember_id(self, letter: Letter, message_id: str) -> None:
        """Keep a mail's Message-ID before it is first handed over, so a retry says the same."""
        with self._store.transaction():
            self._db.execute("UPDATE outbox SET message_id = ? WHERE id = ?", (message_id, letter.id))

    def handed(self, letter: Letter, now: float) -> None:
        with self._store.transaction():
            self._db.execute("UPDATE outbox SET state = 'handed', handed = ? WHERE id = ?", (now, letter.id))

    def retry(self, letter: Letter, error: str, now: float) -> None:
        """A temporary failure: again after a doubling delay, or given up after RETRY_FOR."""
        delay = min(RETRY_FIRST * 2**letter.attempts, RETRY_MOST)
        state = "failed" if now + delay - letter.queued > RETRY_FOR else "waiting"
        with self._store.transaction():
            self._db.execute("UPDATE outbox SET state = ?, attempts = attempts + 1, due = ?, error = ? WHERE id = ?",
                             (state, now + delay, error[:500], letter.id))  # fmt: skip

    def failed(self, letter: Letter, error: str) -> None:
        with self._store.transaction():
            self._db.execute("UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
                             (error[:500], letter.id))  # fmt: skip

    def handed_at(self, address_key: str) -> float | None:
        """When the newest confirmation mail to this mailbox was handed to the relay (None: not yet)."""
        with self._errors():
            row = self._db.execute("SELECT max(handed) FROM outbox WHERE key = ? AND kind = 'confirm'",
                                   (address_key,)).fetchone()  # fmt: skip
        return row[0] if row else None

    def queue(self, address_key: str, kind: str, now: float) -> None:
        """Queue a mail of another kind (a welcome), to go at once."""
        with self._store.transaction():
            self._db.execute("INSERT INTO outbox (key, kind, created, due) VALUES (?, ?, ?, ?)",
                             (address_key, kind, now, now))  # fmt: skip
