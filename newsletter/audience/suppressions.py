"""The suppression store: every address that must never be mailed again, why, from where, and since when.

One SQLite file, `.newsletter/suppressions.sqlite`, shared by everything that writes to it at the same time: the
`serve` process answering hundreds of one-click unsubscribes, a running `send` that reads it every few seconds,
`bounces`, and the CLI. SQLite serialises the writers (WAL, a busy timeout), every change is one committed
transaction (`synchronous=FULL`), so a `kill -9` at any moment leaves either the whole entry or none of it. The
file holds subscriber addresses: it is created owner-only (0600) in a 0700 folder.

An address is stored once, under its mailbox key (lower case, IDNA domain); adding it again changes nothing, so
a repeated one-click POST is harmless. A send asks about its recipients by key, a batch at a time, and `status`
counts by edition: both through indexes, so a store of millions answers as fast as a small one. The
publication's plain `suppression_file` is still read beside it (`exclusions`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..base.addresses import mailbox_key, split_mailbox
from ..base.database import Store, erasing, in_batches
from ..base.errors import ContentError
from ..base.workspace import PRIVATE_DIR, SUPPRESSIONS_FILE
from .reasons import SENDER_SIDE_LIMIT

REASONS = ("unsubscribe", "bounce", "complaint", "manual")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    key TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    edition TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS soft_bounces (key TEXT NOT NULL, edition TEXT NOT NULL, at REAL NOT NULL,
                                         PRIMARY KEY (key, edition));
CREATE TABLE IF NOT EXISTS processed (digest TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS unverified (address TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
                                       edition TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (edition TEXT NOT NULL, domain TEXT NOT NULL, reason TEXT NOT NULL,
                                     at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS suppressions_by_edition ON suppressions (edition);
CREATE INDEX IF NOT EXISTS refusals_by_edition ON refusals (edition);
CREATE INDEX IF NOT EXISTS unverified_by_edition ON unverified (edition);
"""


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    source: str
    at: float
    detail: str = ""
    edition: str = ""


def store_path(root: Path) -> Path:
    """The suppression store of the newsletter in `root` (what `Workspace.suppressions` names)."""
    return root / PRIVATE_DIR / SUPPRESSIONS_FILE


class SuppressionStore(Store):
    """The store, opened for reading and writing (see `Store` for `wait`)."""

    SCHEMA = _SCHEMA
    NAME = "suppression store"

    def add(self, address: str, reason: str, source: str, detail: str = "", edition: str = "") -> bool:
        """Suppress `address`; True when it was not suppressed before (a repeat changes nothing)."""
        if reason not in REASONS:
            raise ContentError(f"unknown reason {reason!r} (one of {', '.join(REASONS)})")
        _, email, problem = split_mailbox(address)
        if problem:
            raise ContentError(problem)
        with self._errors():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO suppressions (key, address, reason, source, detail, at, edition) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (mailbox_key(email), email, reason, source, " ".join(detail.split())[:500], time.time(), edition),
            )
        return cursor.rowcount == 1

    def add_many(self, entries: list[tuple[str, str, str]]) -> int:
        """Suppress many (address, reason, source) in one transaction; returns how many were new."""
        rows = []
        for address, reason, source in entries:
            _, email, problem = split_mailbox(address)
            if problem or reason not in REASONS:
                raise ContentError(problem or f"unknown reason {reason!r}")
            rows.append((mailbox_key(email), email, reason, source, "", time.time(), ""))
        with self.transaction():
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            added = self._db.total_changes - before
        return added

    def suppressed(self, address: str) -> Suppression | None:
        """The suppression of one address, or None."""
        with self._errors():
            row = self._db.execute(
                "SELECT address, reason, source, at, detail, edition FROM suppressions WHERE key = ?",
                (mailbox_key(address),),
            ).fetchone()
        return Suppression(*row) if row else None

    def remove(self, address: str, reasons: tuple[str, ...] = REASONS) -> bool:
        """Lift a suppression (only one of `reasons`); True when there was one."""
        marks = ",".join("?" * len(reasons))
        with self.transaction():
            cursor = self._db.execute(
                f"DELETE FROM suppressions WHERE key = ? AND reason IN ({marks})", (mailbox_key(address), *reasons)
            )
        return cursor.rowcount == 1

    def forget(self, key: str, mark: str) -> None:
        """Erasure: every trace of the mailbox `key` replaced by `mark` (its keyed hash), which stays suppressed,
        so the person is never mailed again while no row names them; the old rows are overwritten on disk."""
        with self._errors(), erasing(self._db), self.transaction():
            was = self._db.execute("SELECT reason, edition FROM suppressions WHERE key = ?", (key,)).fetchone()
            self._db.execute("DELETE FROM suppressions WHERE key = ?", (key,))
            self._db.execute("INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, 'erasure request', '', ?, ?)",
                             (mark, mark, was[0] if was else "manual", time.time(), was[1] if was else ""))  # fmt: skip
            self._db.execute("UPDATE soft_bounces SET key = ? WHERE key = ?", (mark, key))
            self._db.execute("UPDATE unverified SET address = ?, detail = replace(lower(detail), ?, ?) "
                             "WHERE lower(address) = ?", (mark, key, mark, key))  # fmt: skip

    def reasons_for(self, keys: list[str]) -> dict[str, str]:
        """The suppression reason of each of these mailbox keys that is suppressed."""
        found: dict[str, str] = {}
        with self._errors():
            for batch, marks in in_batches(keys):
                found.update(self._db.execute(f"SELECT key, reason FROM suppressions WHERE key IN ({marks})", batch))
        return found

    def entries(self) -> list[Suppression]:
        with self._errors():
            rows = self._db.execute(
                "SELECT address, reason, source, at, detail, edition FROM suppressions ORDER BY at, key"
            )
            return [Suppression(*row) for row in rows]

    def soft_bounce(self, address: str, edition: str, at: float) -> tuple[int, float]:
        """Count a temporary failure (at the time the report says it happened); returns on how many different
        editions the address has failed so, and over how many seconds from the first to the last."""
        key = mailbox_key(address)
        with self._errors():
            self._db.execute("INSERT OR IGNORE INTO soft_bounces VALUES (?, ?, ?)", (key, edition, at))
            count, first, last = self._db.execute(
                "SELECT count(*), min(at), max(at) FROM soft_bounces WHERE key = ?", (key,)
            ).fetchone()
        return count, last - first

    def record_refusal(self, address: str, edition: str, reason: str) -> None:
        """Count a refusal that was about us, not the address (a blocklist, a spam verdict): never a suppression,
        but per edition and receiving domain, for the warning in `status` and `send`."""
        domain = address.rpartition("@")[2].lower()
        with self._errors():
            self._db.execute("INSERT INTO refusals VALUES (?, ?, ?, ?)", (edition, domain, reason, time.time()))

    def refusals_for(self, edition: str) -> dict[str, int]:
        """Refusals of an edition's messages by receiving domain, most first."""
        with self._errors():
            return dict(self._db.execute(
                "SELECT domain, count(*) AS n FROM refusals WHERE edition = ? GROUP BY domain ORDER BY n DESC, domain",
                (edition,),
            ))  # fmt: skip

    def processed(self, digest: str) -> bool:
        """Whether the report with this digest was acted on (an mbox cannot mark a message as read)."""
        with self._errors():
            return self._db.execute("SELECT 1 FROM processed WHERE digest = ?", (digest,)).fetchone() is not None

    def mark_processed(self, digest: str) -> None:
        """Remember a report as acted on: only once its outcome is in the store."""
        with self._errors():
            self._db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?)", (digest, time.time()))

    def first_time(self, event_id: str) -> bool:
        """Remember a provider's event id (or a request's one-time token); False when it was seen before."""
        with self._errors():
            cursor = self._db.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (event_id, time.time()))
        return cursor.rowcount == 1

    def record_unverified(self, address: str, kind: str, detail: str, edition: str) -> None:
        """Keep a report that showed no evidence of being about our mail: what it claimed, for `status`."""
        with self._errors():
            self._db.execute("INSERT INTO unverified VALUES (?, ?, ?, ?, ?)",
                             (address[:320], kind, " ".join(detail.split())[:500], edition, time.time()))  # fmt: skip

    def unverified_count(self, edition: str = "") -> int:
        """Unverified reports (about one edition, or all)."""
        with self._errors():
            query = "SELECT count(*) FROM unverified" + (" WHERE edition = ?" if edition else "")
            return self._db.execute(query, (edition,) if edition else ()).fetchone()[0]

    def counts_for(self, edition: str) -> dict[str, int]:
        """Suppressions a report about this edition caused, by reason."""
        with self._errors():
            return dict(
                self._db.execute(
                    "SELECT reason, count(*) FROM suppressions WHERE edition = ? GROUP BY reason", (edition,)
                )
            )


def list_suppressions(path: Path) -> list[Suppression]:
    """Every suppression of the store at `path`, oldest first; listing creates no store where there is none."""
    if not path.is_file():
        return []
    with SuppressionStore(path) as store:
        return store.entries()


COMPLAINT_LIMIT = 0.001  # Gmail asks bulk senders to stay under 0.1% and never reach 0.3%


def edition_reports(path: Path, edition: str) -> dict[str, int]:
    """What `bounces` recorded in the store at `path` about an edition's messages, by reason (nothing when there
    is no store)."""
    if not path.is_file():
        return {}
    with SuppressionStore(path) as store:
        refused = sum(store.refusals_for(edition).values())
        return {**store.counts_for(edition), "unverified": store.unverified_count(edition), "refused": refused}


def complaint_warning(complaints: int, sent: int) -> str:
    """A warning when complaints exceed 0.1% of the messages sent, else ''."""
    if not sent or complaints / sent <= COMPLAINT_LIMIT:
        return ""
    return (
        f"{complaints} complaint(s) for {sent} message(s) sent ({complaints / sent:.2%}): Gmail asks bulk "
        "senders to stay under 0.1% and never reach 0.3%; check who is on the list and how they joined"
    )


def refusal_warning(by_domain: dict[str, int], sent: int) -> str:
    """A warning when receivers refused more than 1% of an edition's messages for reasons on the sender's side
    (blocklisted, taken for spam, policy): a reputation or content problem; the worst domains are named."""
    refused = sum(by_domain.values())
    if not sent or refused / sent <= SENDER_SIDE_LIMIT:
        return ""
    worst = ", ".join(f"{domain} {count}" for domain, count in list(by_domain.items())[:3])
    return (
        f"{refused} of {sent} message(s) ({refused / sent:.1%}) were refused for reasons on the sender's side "
        f"(blocklist, spam verdict, policy), most at {worst}: check the sending IP's and domain's reputation "
        "and the content before the next send; no address was suppressed for it"
    )


def edition_warnings(path: Path, edition: str, sent: int) -> list[str]:
    """What `status` and the next `send` warn about an edition: complaints over 0.1%, refusals over 1%."""
    if not path.is_file():
        return []
    with SuppressionStore(path) as store:
        complaints, by_domain = store.counts_for(edition).get("complaint", 0), store.refusals_for(edition)
    return [warning for warning in (complaint_warning(complaints, sent), refusal_warning(by_domain, sent)) if warning]
