"""Erasure in a send journal: a forgotten subscriber's row keeps its place and state (the counts, and whether
they were sent, stay true) but no longer names them: address and key become a keyed hash, the name and fields
go, the server's reply loses the address, and a row still pending is skipped. The old bytes are overwritten
(secure delete) and the write-ahead log emptied, so no page of the file still holds them."""

from __future__ import annotations

from pathlib import Path

from ...base.database import erasing, open_private, transaction
from .reader import JOURNAL_HINT, sqlite_errors


def forget_in_journal(path: Path, key: str, email: str, mark: str) -> bool:
    """Replace the mailbox `key` (address `email`) by `mark` in the journal at `path`; True when it was there."""
    with sqlite_errors(path, "erase from"):
        db = open_private(path, timeout=30)
    try:
        with sqlite_errors(path, "erase from"):
            legacy = "key" not in {row[1] for row in db.execute("PRAGMA table_info(recipients)")}
        where, keyed = ("lower(email) = ?", "") if legacy else ("key = ?", "key = :mark, ")
        erasure = transaction(db, path, "cannot erase from the send journal", JOURNAL_HINT)
        with sqlite_errors(path, "erase from"), erasing(db), erasure:
            changed = db.execute(
                f"UPDATE recipients SET email = :mark, {keyed}name = '', fields = '{{}}', "
                "reply = replace(replace(reply, :email, :mark), :key, :mark), "
                f"state = CASE state WHEN 'pending' THEN 'skipped' ELSE state END WHERE {where.replace('?', ':key')}",
                {"mark": mark, "email": email, "key": key},
            ).rowcount
        return changed > 0
    finally:
        db.close()


def set_recipients_print(path: Path, recipients_file: str, fingerprint: str) -> None:
    """Record the new fingerprint of the recipients file a journal started from, after an erasure changed it."""
    with sqlite_errors(path, "update"):
        db = open_private(path, timeout=30)
    try:
        with transaction(db, path, "cannot update the send journal", JOURNAL_HINT):
            if dict(db.execute("SELECT key, value FROM meta")).get("recipients_file") == recipients_file:
                db.execute("UPDATE meta SET value = ? WHERE key = 'recipients'", (fingerprint,))
    finally:
        db.close()
