"""Reading a send journal: what `status` shows, and what a resumed send checks first. Never writes.

Opened read-only, so it is safe beside a running send (SQLite WAL lets readers see every committed state).
Any SQLite error, a corrupt file or some other program's database included, becomes one `JournalError` line.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ...audience.recipients import Position
from ...audience.tokens import edition_code
from ...base.addresses import mailbox_key
from ...base.database import sqlite_errors as database_errors
from ...base.errors import ContentError
from ...base.workspace import JOURNALS_DIR, PRIVATE_DIR
from .states import State

JOURNAL_DIR = Path(PRIVATE_DIR) / JOURNALS_DIR


def journal_path(root: Path, edition_name: str) -> Path:
    return root / JOURNAL_DIR / f"{edition_name}.sqlite"


JOURNAL_HINT = " (is it a newsletter send journal?)"


def sqlite_errors(path: Path, action: str) -> contextlib.AbstractContextManager[None]:
    """SQLite's exceptions as one line naming the journal file."""
    return database_errors(path, f"cannot {action} the send journal", JOURNAL_HINT)


class JournalReader:
    """One edition's journal, read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite_errors(path, "read"):
            self._db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=30)
            self._check_tables()

    def _check_tables(self) -> None:
        """Fail now, not halfway, on a file that is not one of our journals. A journal of newsletter 0.1 (the
        whole list added at the start, no mailbox keys, no counts kept) is read as it is; the first `send` that
        opens it for writing upgrades it (`JournalStore`)."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(recipients)")}
        self.legacy = "email" in columns and "key" not in columns
        self._db.execute("SELECT key, value FROM meta LIMIT 1").fetchall()
        self._db.execute("SELECT id, email, state, attempts, reply, message_id FROM recipients LIMIT 1").fetchall()
        self._db.execute("SELECT at FROM slots LIMIT 1").fetchall()
        if not self.legacy:
            self._db.execute("SELECT key FROM recipients LIMIT 1").fetchall()
            self._db.execute("SELECT state, n FROM counts LIMIT 1").fetchall()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self) -> dict[str, str]:
        with sqlite_errors(self.path, "read"):
            return dict(self._db.execute("SELECT key, value FROM meta"))

    def counts(self) -> dict[str, int]:
        """Recipients per state, every state named (0 where none), from the counts the journal keeps."""
        counts = dict.fromkeys([str(state) for state in State], 0)
        query = (
            "SELECT state, count(*) FROM recipients GROUP BY state" if self.legacy else "SELECT state, n FROM counts"
        )
        with sqlite_errors(self.path, "read"):
            counts.update(self._db.execute(query))
        return counts

    def read_to(self) -> tuple[Position, bool]:
        """How far the recipients file has been read into the journal, and whether to its end."""
        meta = self.meta()  # a journal of 0.1 has none of these: it held the whole list from the start
        position = Position(int(meta.get("read_offset", "0")), int(meta.get("read_line", "0")))
        return position, meta.get("read_all", "1") == "1"

    def pending_keys(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(id, mailbox key) of up to `limit` pending recipients after row `after`: for the plan's count of those
        suppressed since, a batch at a time."""
        column = "email" if self.legacy else "key"
        with sqlite_errors(self.path, "read"):
            rows = self._db.execute(
                f"SELECT id, {column} FROM recipients WHERE id > ? AND state = '{State.PENDING}' ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(row_id, mailbox_key(email)) for row_id, email in rows] if self.legacy else rows

    def line_of(self, key: str) -> int | None:
        """The line of the recipients file a mailbox was added from, or None when it is not in the journal."""
        with sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT line FROM recipients WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def was_sent(self, key: str) -> bool:
        """Whether the mailbox with this key was sent the edition (or may have been: in doubt)."""
        if self.legacy:
            return False  # a journal of 0.1 keeps no keys; a provider's event then names no edition
        with sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT state FROM recipients WHERE key = ?", (key,)).fetchone()
        return bool(row) and row[0] in (State.SENT, State.IN_DOUBT)

    def email_of(self, row_id: int) -> str | None:
        """The address of a journal row (what a VERP tag names)."""
        with sqlite_errors(self.path, "read"):
            row = self._db.execute("SELECT email FROM recipients WHERE id = ?", (row_id,)).fetchone()
        return row[0] if row else None

    def problems(self) -> list[tuple[str, str, int, str, str]]:
        """(email, state, attempts, reply, message_id) of every failed and in-doubt recipient (through the
        index of those rows only: the states are spelled out so that SQLite uses it)."""
        with sqlite_errors(self.path, "read"):
            return list(
                self._db.execute(
                    "SELECT email, state, attempts, reply, message_id FROM recipients "
                    "WHERE state IN ('failed', 'in-doubt') ORDER BY id"
                )
            )

    def check_same_send(self, edition_print: str, recipients_print: str, recipients_file: Path) -> bool:
        """True when this journal already holds a send, which must be of the same edition and recipients."""
        meta = self.meta()
        if not meta:
            return False
        fresh = f"to start a fresh send, move {self.path} away (check `newsletter status` first)"
        if meta.get("recipients") != recipients_print:
            raise ContentError(
                f"this send was started with a different recipients list ({meta.get('recipients_file')}); "
                f"run it again with that file to resume, or {fresh}",
                recipients_file,
            )
        if meta.get("edition") != edition_print:
            raise ContentError(
                "the edition changed after this send started (its text, subject, sender, unsubscribe link or "
                f"unsubscribe secret): recipients would get different messages; restore it to resume, or {fresh}",
                self.path,
            )
        return True


def sent_editions(root: Path) -> list[Path]:
    """The journal of every edition that was sent (or is being sent), by name."""
    return sorted((root / JOURNAL_DIR).glob("*.sqlite"))


class SentJournals:
    """The editions sent so far and whom each journal row went to: what `bounces` asks of the send journals
    (through this, rather than opening them itself: they belong to delivery, a floor above it)."""

    def __init__(self, root: Path, list_id: str) -> None:
        self._journals = {edition_code(list_id, path.stem): path for path in sent_editions(root)}
        self._open: dict[str, JournalReader] = {}  # opened on first use, once per edition, for the whole run

    def editions(self) -> list[str]:
        return [path.stem for path in self._journals.values()]

    def recipient(self, code: str, row_id: int) -> tuple[str, str] | None:
        """(address, edition) of a VERP tag's journal row, or None."""
        path = self._journals.get(code)
        if path is None:
            return None
        if code not in self._open:
            self._open[code] = JournalReader(path)
        address = self._open[code].email_of(row_id)
        return (address, path.stem) if address else None

    def edition_sent_to(self, address: str) -> str:
        """The newest edition sent to `address` (by when its journal last changed), or '': the edition a
        provider's event is about when the event does not say."""
        newest_first = sorted(self._journals.items(), key=lambda item: item[1].stat().st_mtime, reverse=True)
        for code, path in newest_first:
            if code not in self._open:
                self._open[code] = JournalReader(path)
            if self._open[code].was_sent(mailbox_key(address)):
                return path.stem
        return ""

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
        self._open.clear()


def open_existing(root: Path, edition_name: str) -> JournalReader:
    """The journal of an edition for `status`; a missing one is a clear error rather than an empty new file."""
    path = journal_path(root, edition_name)
    if not path.is_file():
        raise ContentError("no send journal: this edition has not been sent yet", path)
    return JournalReader(path)
