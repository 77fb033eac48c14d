"""The send journal: one durable row per recipient, so a send survives crashes without sending anything twice.

SQLite in WAL mode with `synchronous=FULL`: a commit is on disk before `commit()` returns. A recipient moves
`pending` -> `sending` (committed before any byte of its message goes out) -> `sent` (only after a checked 250)
or `failed` (a permanent refusal, with the server's reply). A row still `sending` when a run starts belonged to a
run that died between claiming it and recording the reply: the server may or may not have the message (RFC
1047), so it becomes `in-doubt` and is only sent again when the user says so. Finishing one recipient and claiming
the next share one commit, and the steps of all connections waiting at the same moment share it too (group
commit), so a message costs a fraction of an fsync.

The same commit also enforces the rate limits: every claim records a timestamp, and a claim that would exceed a
limit within its sliding window is refused with the time to wait, so limits hold across connections and restarts.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import heapq
import itertools
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ContentError, JournalError
from .model import Recipient

STATES = ("pending", "sending", "sent", "failed", "in-doubt", "skipped")
JOURNAL_DIR = Path(".newsletter") / "journal"
SLOT_HISTORY_SECONDS = 3600.0

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


@dataclass(frozen=True)
class Claim:
    """A recipient this run now owns: marked `sending`, durably."""

    id: int
    recipient: Recipient
    message_id: str
    attempts: int


@dataclass(frozen=True)
class RateLimit:
    """At most `count` claims in any `window` seconds (plus `slack`, so delivery jitter cannot bunch them)."""

    count: int
    window: float
    slack: float = 0.1


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed recipient: a final state, or `pending` again to retry after `retry_in` seconds.
    `fatal` says the whole send must stop (the server refused our login)."""

    state: str
    reply: str = ""
    charge_attempt: bool = True
    retry_in: float = 0.0
    fatal: bool = False


@dataclass(frozen=True)
class Step:
    """One connection's turn: the outcome of the recipient it finished (if any), and whether it wants another."""

    finished: Claim | None = None
    outcome: Outcome | None = None
    claim_next: bool = True


def journal_path(root: Path, edition_name: str) -> Path:
    return root / JOURNAL_DIR / f"{edition_name}.sqlite"


def fingerprint(values: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for value in values:
        digest.update(value.encode("utf-8") + b"\0")
    return digest.hexdigest()


class Journal:
    """One edition's send journal, locked to one `newsletter send` process at a time."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """`read_only` for `status`, safe beside a running send; otherwise locked to this process."""
        self.path = path
        self._lock_file = None
        if read_only:
            self._db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=30)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 (held for the journal's lifetime)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise ContentError("another `newsletter send` of this edition is running", path) from None
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        for index in ("recipients_state", "slots_at"):  # early journals had these; each commit wrote to them
            db.execute(f"DROP INDEX IF EXISTS {index}")
        return db

    def close(self) -> None:
        self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- starting and resuming --------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta"))

    def check_same_send(self, edition_print: str, recipients_print: str, recipients_file: Path) -> bool:
        """True when this journal already holds a send, which must be of the same edition and recipients."""
        meta = self.meta()
        if not meta:
            return False
        fresh = f"to start a fresh send, move {self.path} away (check `newsletter status` first)"
        if meta["recipients"] != recipients_print:
            raise ContentError(
                f"this send was started with a different recipients list ({meta['recipients_file']}); "
                f"run it again with that file to resume, or {fresh}",
                recipients_file,
            )
        if meta["edition"] != edition_print:
            raise ContentError(
                f"the edition changed after this send started; restore it to resume, or {fresh}", self.path
            )
        return True

    def start(self, edition_print: str, recipients_print: str, rows: list[tuple[Recipient, str]], source: Path) -> None:
        """Fill a new journal: every recipient `pending`, with the Message-ID every attempt to them will carry.
        Row ids are positions in `rows` (from 1), which `queue` relies on."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO recipients (id, email, name, fields, line, message_id) VALUES (?, ?, ?, ?, ?, ?)",
                [(i, r.email, r.name, json.dumps(r.fields), r.line, mid) for i, (r, mid) in enumerate(rows, 1)],
            )
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("edition", edition_print), ("recipients", recipients_print),
                 ("recipients_file", str(source)), ("started", str(time.time()))],
            )  # fmt: skip

    def recover(self) -> int:
        """Rows left `sending` by a run that died become `in-doubt`; returns how many."""
        with self._transaction():
            return self._db.execute(
                "UPDATE recipients SET state = 'in-doubt', reply = ? WHERE state = 'sending'",
                ("an earlier run stopped while sending this message: the server may or may not have it",),
            ).rowcount

    def skip_suppressed(self, suppressed: frozenset[str]) -> int:
        """Mark pending recipients who have unsubscribed since the send started; they are never sent to."""
        if not suppressed:
            return 0
        rows = [(i,) for i, email in self._db.execute("SELECT id, email FROM recipients WHERE state = 'pending'")
                if email.lower() in suppressed]  # fmt: skip
        with self._transaction():
            self._db.executemany(
                "UPDATE recipients SET state = 'skipped', reply = 'unsubscribed (suppression list)' WHERE id = ?", rows
            )
        return len(rows)

    def release_in_doubt(self) -> int:
        """--resend-in-doubt: make in-doubt recipients pending again (same Message-ID, so clients can dedupe)."""
        with self._transaction():
            return self._db.execute("UPDATE recipients SET state = 'pending' WHERE state = 'in-doubt'").rowcount

    # --- the send loop ----------------------------------------------------------------------------------------

    def queue(self, rows: list[tuple[Recipient, str]]) -> None:
        """Load the pending recipients, in list order, before a run's first `advance`.

        `rows` is the list this journal was started with (`check_same_send` has compared their fingerprints), so
        a claim takes its recipient from memory: the loop only writes to the database, which keeps each commit to
        a few row updates and no index."""
        self._rows = rows
        self._pending: collections.deque[int] = collections.deque()
        self._retries: list[tuple[float, int]] = []  # (not_before, id): recipients waiting out a retry delay
        self._attempts: dict[int, int] = {}
        now = time.time()
        for row_id, attempts, not_before in self._db.execute(
            "SELECT id, attempts, not_before FROM recipients WHERE state = 'pending' ORDER BY id"
        ):
            self._attempts[row_id] = attempts
            if not_before > now:
                heapq.heappush(self._retries, (not_before, row_id))
            else:
                self._pending.append(row_id)

    def advance(self, steps: list[Step], limits: tuple[RateLimit, ...]) -> list[Claim | float | None]:
        """Apply several connections' steps in one durable commit (group commit: one fsync for all of them).

        Each step records the outcome of the recipient a connection just finished and, if asked, claims the next
        pending one. Each answer is the new Claim; or, when a rate limit is reached or every pending recipient is
        waiting out a retry delay, the seconds to wait before asking again; or None when nobody is left.
        """
        now = time.time()
        try:
            with self._transaction():
                return [self._apply(step, limits, now) for step in steps]
        except sqlite3.Error as error:
            raise JournalError(f"cannot write the send journal: {error}", self.path) from None

    def _apply(self, step: Step, limits: tuple[RateLimit, ...], now: float) -> Claim | float | None:
        if step.finished is not None and step.outcome is not None:
            self._record(step.finished.id, step.outcome, now)
        if not step.claim_next:
            return None
        wait = self._wait_for_slot(limits, now)
        if wait > 0:
            return wait
        row_id = self._next_due(now)
        if row_id is None:  # nobody left, or only recipients waiting out a retry delay
            return max(self._retries[0][0] - now, 0.001) if self._retries else None
        self._db.execute("UPDATE recipients SET state = 'sending', updated = ? WHERE id = ?", (now, row_id))
        self._db.execute("INSERT INTO slots VALUES (?)", (now,))
        recipient, message_id = self._rows[row_id - 1]
        return Claim(row_id, recipient, message_id, self._attempts[row_id])

    def _record(self, row_id: int, outcome: Outcome, now: float) -> None:
        charged = int(outcome.charge_attempt)
        self._db.execute(
            "UPDATE recipients SET state = ?, reply = ?, attempts = attempts + ?, not_before = ?, updated = ? "
            "WHERE id = ?",
            (outcome.state, outcome.reply, charged, now + outcome.retry_in, now, row_id),
        )
        if outcome.state == "pending":  # to be tried again, after its delay
            self._attempts[row_id] += charged
            heapq.heappush(self._retries, (now + outcome.retry_in, row_id))

    def upcoming(self, count: int) -> list[tuple[int, Recipient]]:
        """The next `count` recipients a claim would take if no retry falls due first: (row id, recipient)."""
        ids = itertools.islice(self._pending, count)
        return [(row_id, self._rows[row_id - 1][0]) for row_id in ids]

    def _next_due(self, now: float) -> int | None:
        """The recipient to claim: one whose retry delay is over, else the next never tried."""
        if self._retries and self._retries[0][0] <= now:
            return heapq.heappop(self._retries)[1]
        return self._pending.popleft() if self._pending else None

    def _wait_for_slot(self, limits: tuple[RateLimit, ...], now: float) -> float:
        wait = 0.0
        for limit in limits:
            span = limit.window + limit.slack
            # slots are appended in claim order, so the count-th latest row is the oldest of the last `count` claims
            recent = self._db.execute(
                "SELECT at FROM slots ORDER BY rowid DESC LIMIT 1 OFFSET ?", (limit.count - 1,)
            ).fetchone()
            if recent is not None and recent[0] > now - span:  # all `count` in the window: wait until it leaves
                wait = max(wait, recent[0] + span - now)
        return wait

    def prune_slots(self) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM slots WHERE at < ?", (time.time() - SLOT_HISTORY_SECONDS - 60,))

    # --- reporting --------------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
        return counts

    def problems(self) -> list[tuple[str, str, int, str, str]]:
        """(email, state, attempts, reply, message_id) of every failed and in-doubt recipient."""
        return list(
            self._db.execute(
                "SELECT email, state, attempts, reply, message_id FROM recipients "
                "WHERE state IN ('failed', 'in-doubt') ORDER BY id"
            )
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error): the write lock is taken up front, so no deadlocks."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def open_existing(root: Path, edition_name: str) -> Journal:
    """The journal of an edition for `status`; a missing one is a clear error rather than an empty new file."""
    path = journal_path(root, edition_name)
    if not path.exists():
        raise ContentError("no send journal: this edition has not been sent yet", path)
    return Journal(path, read_only=True)
