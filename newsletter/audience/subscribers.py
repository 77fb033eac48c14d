"""The subscriber store: who joined the list, when and how, with the proof of their consent.

One SQLite file, `.newsletter/subscribers.sqlite`, owner-only like the other stores (it holds addresses, IP
addresses and user agents). One row per mailbox, under the same key as de-duplication and suppression: the
address, the name and any custom fields (JSON), the status (`pending` until the reader confirms, `confirmed`,
`unsubscribed`), the times (created, confirmed, changed), and the consent record: where it came from (`form`,
`import`, `cli`), the page or form, the client's IP address and user agent at sign-up and at confirmation, and
the consent text shown. Unsubscribes, bounces and complaints stay in the suppression store, which every send
asks; a listing shows them beside the status.

A subscriber's row is changed, never duplicated: a second sign-up of a pending address keeps its first record;
a sign-up of an unsubscribed one makes it pending again (it must confirm again); a confirmed one stays
confirmed. Nothing here sends mail: the confirmation mails wait in an outbox (`outbox`) that `serve` empties.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..base.addresses import mailbox_key, split_mailbox
from ..base.database import Store, erasing
from ..base.errors import ContentError, JournalError
from ..base.writer import atomic_file, private_folder

STATUSES = ("pending", "confirmed", "unsubscribed")
SOURCES = ("form", "import", "cli")
_COLUMNS = ("address", "name", "fields", "status", "created", "confirmed", "changed", "source", "page", "consent",
            "signup_ip", "signup_agent", "confirm_ip", "confirm_agent")  # fmt: skip
_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    key TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    created REAL NOT NULL,
    confirmed REAL,
    changed REAL NOT NULL,
    source TEXT NOT NULL,
    page TEXT NOT NULL DEFAULT '',
    consent TEXT NOT NULL DEFAULT '',
    signup_ip TEXT NOT NULL DEFAULT '',
    signup_agent TEXT NOT NULL DEFAULT '',
    confirm_ip TEXT NOT NULL DEFAULT '',
    confirm_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS subscribers_by_status ON subscribers (status);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    due REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting',
    attempts INTEGER NOT NULL DEFAULT 0,
    handed REAL,
    message_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due) WHERE state IN ('waiting', 'sending');
CREATE INDEX IF NOT EXISTS outbox_by_key ON outbox (key, created);
"""


@dataclass(frozen=True)
class Consent:
    """How a sign-up or confirmation was made: what the consent record keeps."""

    source: str = "cli"
    page: str = ""
    text: str = ""
    ip: str = ""
    agent: str = ""


@dataclass(frozen=True)
class SignUp:
    """One sign-up from the form (the address already checked)."""

    address: str
    name: str
    consent: Consent
    may_mail: bool = True
    rejoining: bool = False
    at: float = 0.0


@dataclass(frozen=True)
class Subscriber:
    address: str
    name: str
    fields: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    created: float = 0.0
    confirmed: float | None = None
    changed: float = 0.0
    source: str = "cli"
    page: str = ""
    consent: str = ""
    signup_ip: str = ""
    signup_agent: str = ""
    confirm_ip: str = ""
    confirm_agent: str = ""


MAIL_EVERY = 600  # seconds: at most one confirmation mail per address in this time...
MAILS_A_DAY = 3  # ...and this many a day: nobody can mail-bomb a victim through the form


_INSERT = (
    "INSERT OR IGNORE INTO subscribers (key, address, name, fields, status, created, confirmed, changed, "
    "source, page, consent, signup_ip, signup_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(email: str, name: str, fields: dict[str, str], status: str, consent: Consent, now: float) -> tuple:
    """The values of `_INSERT` for a new subscriber."""
    return (mailbox_key(email), email, name, json.dumps(fields, ensure_ascii=False) if fields else "{}", status,
            now, now if status == "confirmed" else None, now, consent.source, consent.page, consent.text,
            consent.ip, consent.agent)  # fmt: skip


def _checked(address: str) -> str:
    _, email, problem = split_mailbox(address)
    if problem:
        raise ContentError(problem)
    return email


def store_path(root: Path) -> Path:
    from ..base.workspace import PRIVATE_DIR

    return root / PRIVATE_DIR / "subscribers.sqlite"


class SubscriberStore(Store):
    """The store, for reading and writing (see `Store` for `wait`: `serve` opens it with 0)."""

    SCHEMA = _SCHEMA
    NAME = "subscriber store"

    def get(self, address: str) -> Subscriber | None:
        with self._errors():
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM subscribers WHERE key = ?",
                                   (mailbox_key(address),)).fetchone()  # fmt: skip
        return _subscriber(row) if row else None

    def subscribe(self, address: str, name: str, consent: Consent, confirmed: bool = False,
                  fields: dict[str, str] | None = None, now: float | None = None) -> Subscriber:  # fmt: skip
        """Record a sign-up; returns the subscriber as stored (see the module's docstring for a repeat)."""
        email = _checked(address)
        with self.transaction():
            self._record(email, name, consent, confirmed, fields or {}, time.time() if now is None else now)
        return self.get(email)

    def sign_up(self, requests: list[SignUp]) -> list[bool]:
        """Sign-ups from the form, and their confirmation mails queued in the outbox, all in one transaction
        (a `kill -9` after the answer loses none; a burst of them costs one fsync). A mail is queued unless the
        address may not be mailed (suppressed), is already confirmed, or is past the limits (MAIL_EVERY,
        MAILS_A_DAY). `rejoining`: the address unsubscribed earlier, so even a confirmed subscriber confirms
        again. For each, whether a mail was queued."""
        queued = []
        with self.transaction():
            for request in requests:
                email = _checked(request.address)
                status = self._record(email, request.name, request.consent, False, {}, request.at, request.rejoining)
                key = mailbox_key(email)
                mail = request.may_mail and status == "pending" and self._may_mail(key, request.at)
                if mail:
                    self._db.execute("INSERT INTO outbox (key, kind, created, due) VALUES (?, 'confirm', ?, ?)",
                                     (key, request.at, request.at))  # fmt: skip
                queued.append(mail)
        return queued

    def _may_mail(self, key: str, now: float) -> bool:
        recent, today = self._db.execute(
            "SELECT count(*) FILTER (WHERE created > ?), count(*) FROM outbox WHERE key = ? AND kind = 'confirm' "
            "AND created > ?", (now - MAIL_EVERY, key, now - 86400)).fetchone()  # fmt: skip
        return recent == 0 and today < MAILS_A_DAY

    def _record(self, email: str, name: str, consent: Consent, confirmed: bool, fields: dict[str, str],
                now: float, rejoining: bool = False) -> str:  # fmt: skip
        """Insert or update a subscriber, inside the caller's transaction; returns their status now."""
        status = "confirmed" if confirmed else "pending"
        if self._insert(email, name, fields, status, consent, now):
            return status
        current = self._db.execute("SELECT status FROM subscribers WHERE key = ?", (mailbox_key(email),)).fetchone()[0]
        if current == "unsubscribed" or rejoining or (confirmed and current == "pending"):
            self._db.execute(
                "UPDATE subscribers SET status = ?, confirmed = ?, changed = ?, source = ?, page = ?, consent = ?, "
                "signup_ip = ?, signup_agent = ? WHERE key = ?",
                (status, now if confirmed else None, now, consent.source, consent.page, consent.text, consent.ip,
                 consent.agent, mailbox_key(email)),
            )  # fmt: skip
            return status
        return current

    def _insert(self, email: str, name: str, fields: dict[str, str], status: str, consent: Consent,
                now: float) -> bool:  # fmt: skip
        return self._db.execute(_INSERT, _row(email, name, fields, status, consent, now)).rowcount == 1

    def add_many(self, rows: list[tuple[str, str, dict[str, str]]], consent: Consent, confirmed: bool) -> int:
        """Add (address, name, fields) rows in one transaction; returns how many were new (an address already
        in the store is left as it is)."""
        now, status = time.time(), "confirmed" if confirmed else "pending"
        with self.transaction():
            before = self._db.total_changes
            self._db.executemany(_INSERT, [_row(*row, status, consent, now) for row in rows])
            return self._db.total_changes - before

    def confirm(self, address: str, consent: Consent, now: float | None = None) -> bool:
        """Confirm a pending subscriber; True when this changed something (a second confirmation does not)."""
        now = time.time() if now is None else now
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE subscribers SET status = 'confirmed', confirmed = ?, changed = ?, confirm_ip = ?, "
                "confirm_agent = ? WHERE key = ? AND status = 'pending'",
                (now, now, consent.ip, consent.agent, mailbox_key(address)),
            )
        return cursor.rowcount == 1

    def listing(self, status: str = "") -> Iterator[Subscriber]:
        """Every subscriber (of one status), oldest first, read as it goes."""
        if status and status not in STATUSES:
            raise ContentError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        where = "WHERE status = ? " if status else ""
        with self._errors():
            cursor = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM subscribers {where}ORDER BY created, key",
                                      (status,) if status else ())  # fmt: skip
            for row in cursor:
                yield _subscriber(row)

    def counts(self) -> dict[str, int]:
        with self._errors():
            found = dict(self._db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"))
        return {status: found.get(status, 0) for status in STATUSES}

    def remove(self, address: str) -> bool:
        """Delete a subscriber and their consent record, leaving no trace in the file (secure delete)."""
        with self._errors(), erasing(self._db), self.transaction():
            cursor = self._db.execute("DELETE FROM subscribers WHERE key = ?", (mailbox_key(address),))
            self._db.execute("DELETE FROM outbox WHERE key = ?", (mailbox_key(address),))
        return cursor.rowcount == 1

    def field_names(self) -> list[str]:
        """Every custom field a confirmed subscriber has, sorted: the columns of a snapshot."""
        with self._errors():
            return [name for (name,) in self._db.execute(
                "SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j "
                "WHERE status = 'confirmed' AND subscribers.fields != '{}' ORDER BY 1")]  # fmt: skip


def _subscriber(row: tuple) -> Subscriber:
    values = dict(zip(_COLUMNS, row, strict=True))
    try:
        values["fields"] = json.loads(values["fields"] or "{}")
    except ValueError:
        raise JournalError("the subscriber store holds a row it cannot read (fields)") from None
    return Subscriber(**values)


SNAPSHOT_BATCH = 10_000


def write_snapshot(store: Path, out: Path) -> int:
    """Every confirmed subscriber of the store at `store`, as a recipients CSV at `out` (owner-only, written
    whole or not at all): what a send without --recipients sends to, frozen when it starts, so a sign-up after
    that waits for the next edition. Returns how many rows it holds. SQLite picks each custom field out of the
    JSON and the csv module writes the rows, in one read: a million rows in about a second."""
    private_folder(out.parent)
    with SubscriberStore(store) as subscribers, atomic_file(out, private=True) as handle:
        names = [name for name in subscribers.field_names() if name not in ("email", "name") and '"' not in name]
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["email", "name", *names])
        picks = "".join(", json_extract(fields, ?)" for _ in names)
        with subscribers._errors():
            rows = subscribers._db.execute(  # `+status`: a scan in rowid order beats the index for most rows
                f"SELECT address, name{picks} FROM subscribers WHERE +status = 'confirmed' ORDER BY rowid",
                [f'$."{name}"' for name in names])  # fmt: skip
            count = _write_counted(writer, rows)
        text.flush()
        text.detach()
    return count


def _write_counted(writer, rows) -> int:
    count = 0
    while batch := rows.fetchmany(SNAPSHOT_BATCH):
        writer.writerows(batch)
        count += len(batch)
    return count


@dataclass
class ImportResult:
    added: int = 0
    existing: int = 0  # already in the store: left as they were
    left_out: int = 0  # bad rows and duplicates, each reported by line


IMPORT_BATCH = 1000


def import_subscribers(store: Path, recipients_csv: Path, consent: Consent, confirmed: bool,
                       on_problem: Callable[[str], None]) -> ImportResult:  # fmt: skip
    """Move an existing list in: every good row of a recipients CSV becomes a subscriber (confirmed when the
    consent was obtained elsewhere, as `consent.text` says; else pending). Bad rows and duplicates are reported
    by line and left out; the good rows are kept."""
    from .recipients import RecipientFile, SeenKeys, checked_rows

    source = RecipientFile(recipients_csv)
    source.survey()  # not UTF-8: refused before anything is written
    result, seen = ImportResult(), SeenKeys()
    try:
        with SubscriberStore(store) as subscribers:
            batch: list[tuple[str, str, dict[str, str]]] = []
            for checked in checked_rows(source, seen, lambda keys: set(), kept="kept once"):
                if checked.problem:
                    result.left_out += 1
                    on_problem(checked.problem)
                    continue
                recipient = checked.row.recipient
                batch.append((recipient.email, recipient.name, dict(recipient.fields)))
                if len(batch) == IMPORT_BATCH:
                    _add(subscribers, batch, consent, confirmed, result)
            _add(subscribers, batch, consent, confirmed, result)
    finally:
        seen.close()
    return result


def _add(subscribers: SubscriberStore, batch: list, consent: Consent, confirmed: bool, result: ImportResult) -> None:
    added = subscribers.add_many(batch, consent, confirmed)
    result.added += added
    result.existing += len(batch) - added
    batch.clear()
