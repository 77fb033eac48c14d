"""The durable part of a send journal: one SQLite file per edition, written by one `newsletter send` at a time.

SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before `commit()` returns. Finishing one
recipient and claiming the next share one commit, and the steps of every connection ready at the same moment
share it too (group commit, see `ledger`), so a message costs a fraction of an fsync. Rows are updated by id;
the only indexes are the mailbox key (written once, when a row is added) and the few failed or in-doubt rows,
so a commit writes a few pages whatever the list's size. Triggers keep a count per state beside the rows, so
`status` answers at once for a list of millions.

The list flows in while the send runs (`add`, a chunk at a time, with the place in the recipients file it
read to), so the first message goes out at once and a resume goes on reading where the last run stopped.

The file holds every subscriber's address, name and CSV fields: it is created readable by its owner only
(0600, in a 0700 folder), whatever the umask, and SQLite gives its -wal and -shm files the same mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from pathlib import Path

from ...audience.recipients import Position
from ...base.addresses import mailbox_key
from ...base.database import PRIVATE, in_batches, open_private, transaction
from ...base.errors import ContentError
from ...base.model import Recipient
from ...base.writer import private_folder
from .reader import JOURNAL_HINT, JournalReader, sqlite_errors
from .states import Outcome, State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS problems ON recipients (id) WHERE state IN ('failed', 'in-doubt');
CREATE TRIGGER IF NOT EXISTS count_new AFTER INSERT ON recipients BEGIN
    INSERT INTO counts VALUES (new.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS count_change AFTER UPDATE OF state ON recipients WHEN old.state != new.state BEGIN
    UPDATE counts SET n = n - 1 WHERE state = old.state;
    INSERT INTO counts VALUES (new.state, 1) ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
"""


def _statements(script: str) -> list[str]:
    """The statements of an SQL script, triggers whole, to run one by one inside a transaction (executescript
    would commit first)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


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
                if self.legacy:
                    self._upgrade()
        except BaseException:
            os.close(lock)
            raise

    def close(self) -> None:
        super().close()
        os.close(self._lock)

    def _upgrade(self) -> None:
        """Give a journal of newsletter 0.1 this layout (mailbox keys, counts, indexes) in one transaction, so
        that a send it holds can be resumed and `status` answers from counts: its whole list is in already."""
        self._db.create_function("mailbox_key", 1, mailbox_key, deterministic=True)
        with self._transaction("upgrade"):
            self._db.execute("ALTER TABLE recipients ADD COLUMN key TEXT")
            self._db.execute("UPDATE recipients SET key = mailbox_key(email)")
            self._db.execute("CREATE UNIQUE INDEX recipients_key ON recipients (key)")
            for statement in _statements(_SCHEMA):  # what is missing: the counts, their triggers, an index
                self._db.execute(statement)
            self._db.execute("INSERT INTO counts SELECT state, count(*) FROM recipients GROUP BY state")
            self._db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                 [("read_offset", "0"), ("read_line", "0"), ("read_all", "1")])  # fmt: skip
        self.legacy = False

    def start(self, edition_print: str, recipients_print: str, source: Path) -> None:
        """Begin a new journal: what is sent, and from which list; the list's rows come in through `add`."""
        with self._transaction("write"):
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("edition", edition_print), ("recipients", recipients_print), ("recipients_file", str(source)),
                 ("started", str(time.time())), ("read_offset", "0"), ("read_line", "0"), ("read_all", "0"),
                 ("format", "2")],
            )  # fmt: skip

    def add(self, rows: list[tuple[Recipient, str, str]], read_to: Position,
            read_all: bool) -> list[tuple[Recipient, int]]:  # fmt: skip
        """Add (recipient, mailbox key, Message-ID) rows, all `pending`, and how far the recipients file has been
        read, in one transaction. A mailbox already in the journal is not added again: returns those, each with
        the line it was first met on."""
        duplicates = []
        values = [(key, r.email, r.name, json.dumps(r.fields) if r.fields else "{}", r.line, message_id)
                  for r, key, message_id in rows]  # fmt: skip
        with self._transaction("write"):
            added = self._db.executemany(
                "INSERT INTO recipients (key, email, name, fields, line, message_id) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                values,
            ).rowcount  # the rows themselves: not counting the triggers' changes, as total_changes would
            if added < len(values):  # rare: some were there already; say which
                duplicates = self._duplicates(rows)
            self._db.executemany(
                "UPDATE meta SET value = ? WHERE key = ?",
                [(str(read_to.offset), "read_offset"), (str(read_to.line), "read_line"),
                 (str(int(read_all)), "read_all")],
            )  # fmt: skip
        return duplicates

    def _duplicates(self, rows: list[tuple[Recipient, str, str]]) -> list[tuple[Recipient, int]]:
        """Of rows just offered, those whose mailbox the journal holds from another line, with that line."""
        lines = [(recipient, self.line_of(key)) for recipient, key, _ in rows]
        return [(recipient, first) for recipient, first in lines if first != recipient.line]

    def recover(self) -> int:
        """Rows left `sending` by a run that died become `in-doubt`; returns how many."""
        with self._transaction("write"):
            return self._db.execute(
                "UPDATE recipients SET state = ?, reply = ? WHERE state = ?",
                (State.IN_DOUBT, "an earlier run stopped while sending this message: the server may or may not "
                 "have it", State.SENDING),
            ).rowcount  # fmt: skip

    def skip(self, keys: list[str]) -> list[int]:
        """Mark these mailboxes, where still pending, as never to be sent (they are suppressed); returns their
        row ids."""
        skipped = []
        with self._transaction("write"):
            for batch, marks in in_batches(keys):
                skipped += [row_id for (row_id,) in self._db.execute(
                    f"UPDATE recipients SET state = '{State.SKIPPED}', reply = 'unsubscribed (suppression list)' "
                    f"WHERE state = '{State.PENDING}' AND key IN ({marks}) RETURNING id",
                    batch,
                )]  # fmt: skip
        return skipped

    def release_in_doubt(self) -> int:
        """--resend-in-doubt: make in-doubt recipients pending again (same Message-ID, so clients can dedupe)."""
        with self._transaction("write"):
            return self._db.execute(
                "UPDATE recipients SET state = ? WHERE state = ?", (State.PENDING, State.IN_DOUBT)
            ).rowcount

    def pending_after(self, after: int, limit: int) -> list[tuple]:
        """Up to `limit` pending rows with ids above `after`, in list order: (id, key, email, name, fields,
        line, Message-ID, attempts, not before)."""
        with sqlite_errors(self.path, "read"):
            return self._db.execute(
                "SELECT id, key, email, name, fields, line, message_id, attempts, not_before FROM recipients "
                f"WHERE id > ? AND state = '{State.PENDING}' ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()

    def claim_history(self, since: float, newest: int) -> list[float]:
        """Times of the newest `newest` claims made since `since`, oldest first: what the rate limits count on
        restart (only as many as they need: half a million claims an hour ago would be 20 MB)."""
        with self._transaction("write"):
            self._db.execute("DELETE FROM slots WHERE at < ?", (since,))
            rows = self._db.execute("SELECT at FROM slots ORDER BY rowid DESC LIMIT ?", (newest,)).fetchall()
        return [at for (at,) in reversed(rows)]

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
