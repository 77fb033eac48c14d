"""The durable part of a send journal: one SQLite file per edition, written by one `newsletter send` at a time.

SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before `commit()` returns. Finishing one
recipient and claiming the next share one commit, and the steps of every connection ready at the same moment
share it too (group commit, see `ledger`), so a message costs a fraction of an fsync. Rows are only updated by
id and no index is kept, so a commit writes a few pages.

The file holds every subscriber's address, name and CSV fields: it is created readable by its owner only
(0600, in a 0700 folder), whatever the umask, and SQLite gives its -wal and -shm files the same mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from ...base.addresses import mailbox_key
from ...base.database import PRIVATE, open_private, transaction
from ...base.errors import ContentError
from ...base.model import Recipient
from ...base.writer import private_folder
from .reader import JOURNAL_HINT, JournalReader, sqlite_errors
from .states import Outcome, State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    fields TEXT NOT NULL,
    line INTEGER,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sending','sent','failed','in-doubt','skipped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL DEFAULT '',
    not_before REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS slots (at REAL NOT NULL);
"""


class JournalStore(JournalReader):
    """The journal opened for writing, locked to this process for as long as it is open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_folder(path.parent)
        private_folder(path.parent.parent)
        lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise ContentError("another `newsletter send` of this edition is running", path) from None
        self._lock = lock
        try:
            with sqlite_errors(path, "open"):
                self._db = open_private(path, timeout=60)
                if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                    self._db.executescript(_SCHEMA)
                self._check_tables()  # before changing anything in a file that may be some other program's
                for index in ("recipients_state", "slots_at"):  # early journals had these; each commit wrote them
                    self._db.execute(f"DROP INDEX IF EXISTS {index}")
        except BaseException:
            os.close(lock)
            raise

    def close(self) -> None:
        super().close()
        os.close(self._lock)

    def start(self, edition_print: str, recipients_print: str, rows: list[tuple[Recipient, str]], source: Path) -> None:
        """Fill a new journal: every recipient `pending`, with the Message-ID every attempt to them will carry.
        Row ids are positions in `rows` (from 1), which the send loop relies on."""
        with self._transaction("write"):
            self._db.executemany(
                "INSERT INTO recipients (id, email, name, fields, line, message_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (i, r.email, r.name, json.dumps(r.fields) if r.fields else "{}", r.line, mid)
                    for i, (r, mid) in enumerate(rows, 1)
                ],
            )
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("edition", edition_print), ("recipients", recipients_print),
                 ("recipients_file", str(source)), ("started", str(time.time()))],
            )  # fmt: skip

    def recover(self) -> int:
        """Rows left `sending` by a run that died become `in-doubt`; returns how many."""
        with self._transaction("write"):
            return self._db.execute(
                "UPDATE recipients SET state = ?, reply = ? WHERE state = ?",
                (State.IN_DOUBT, "an earlier run stopped while sending this message: the server may or may not "
                 "have it", State.SENDING),
            ).rowcount  # fmt: skip

    def skip_suppressed(self, suppressed: frozenset[str]) -> list[int]:
        """Mark pending recipients who have unsubscribed since the send started (they are never sent to);
        returns their row ids."""
        if not suppressed:
            return []
        with self._transaction("write"):
            pending = self._db.execute("SELECT id, email FROM recipients WHERE state = ?", (State.PENDING,))
            rows = [(i,) for i, email in pending if mailbox_key(email) in suppressed]
            self._db.executemany(
                f"UPDATE recipients SET state = '{State.SKIPPED}', reply = 'unsubscribed (suppression list)' "
                "WHERE id = ?",
                rows,
            )
        return [row_id for (row_id,) in rows]

    def release_in_doubt(self) -> int:
        """--resend-in-doubt: make in-doubt recipients pending again (same Message-ID, so clients can dedupe)."""
        with self._transaction("write"):
            return self._db.execute(
                "UPDATE recipients SET state = ? WHERE state = ?", (State.PENDING, State.IN_DOUBT)
            ).rowcount

    def pending_rows(self) -> list[tuple[int, int, float]]:
        """(id, attempts, not before) of every pending recipient, in list order."""
        with sqlite_errors(self.path, "read"):
            return self._db.execute(
                "SELECT id, attempts, not_before FROM recipients WHERE state = ? ORDER BY id", (State.PENDING,)
            ).fetchall()

    def claim_history(self, since: float) -> list[float]:
        """Times of the claims made since `since`, oldest first: what the rate limits count on restart."""
        with self._transaction("write"):
            self._db.execute("DELETE FROM slots WHERE at < ?", (since,))
            return [at for (at,) in self._db.execute("SELECT at FROM slots ORDER BY rowid")]

    def commit(self, finished: list[tuple[int, Outcome]], claimed: list[int], now: float) -> None:
        """One durable transaction: every finished recipient's outcome, and every new claim marked `sending`."""
        with self._transaction("write"):
            if finished:
                self._db.executemany(
                    "UPDATE recipients SET state = ?, reply = ?, attempts = attempts + ?, not_before = ?, "
                    "updated = ? WHERE id = ?",
                    [(o.state, o.reply, int(o.charge_attempt), now + o.retry_in, now, i) for i, o in finished],
                )
            if claimed:
                self._db.executemany(f"UPDATE recipients SET state = '{State.SENDING}', updated = ? WHERE id = ?",
                                     [(now, row_id) for row_id in claimed])  # fmt: skip
                self._db.executemany("INSERT INTO slots VALUES (?)", [(now,)] * len(claimed))

    def _transaction(self, action: str) -> contextlib.AbstractContextManager[None]:
        return transaction(self._db, self.path, f"cannot {action} the send journal", JOURNAL_HINT)
