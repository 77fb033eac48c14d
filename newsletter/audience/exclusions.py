"""Who must never be mailed, asked a batch of addresses at a time.

The suppression store may hold millions of addresses after years of bounces and unsubscribes, so a send does not
load it: it asks about the few hundred recipients it is about to claim (one indexed query), and every few seconds
asks what was added since it last looked (someone who unsubscribes mid-send). The publication's plain
`suppression_file` is a file the publisher keeps by hand; it is read whole, and again when it changes.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..base.addresses import mailbox_key
from ..base.database import in_batches, sqlite_errors
from ..base.errors import DataError
from ..base.files import data_errors, read_text
from ..base.workspace import Workspace
from .tokens import FORGOTTEN, forgotten_marks, unsubscribe_keys


class Exclusions:
    """The suppression store (read-only, queried) and the suppression file (read whole) of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        listed = workspace.publication.suppression_file
        self._store = workspace.suppressions
        self._file = workspace.root / listed if listed else None
        self._file_stamp: tuple[int, int] | None = None
        self.file_keys: frozenset[str] = frozenset()
        self._db: sqlite3.Connection | None = None
        self._newest = 0  # the store's last row id seen by `added`
        self._keys = unsubscribe_keys(workspace.publication.unsubscribe_secret)
        self._any_forgotten: bool | None = None
        self._read_file()
        if self._connected():
            self._newest = self._query("SELECT coalesce(max(rowid), 0) FROM suppressions", ())[0][0]

    def among(self, keys: Iterable[str]) -> set[str]:
        """Which of these mailbox keys must not be mailed (a forgotten one by the keyed hash it is stored as)."""
        keys = list(keys)
        found = {key for key in keys if key in self.file_keys}
        if self._connected():
            asked = {key: key for key in keys}
            if self._forgotten():
                asked |= {mark: key for key in keys for mark in forgotten_marks(self._keys, key)}
            for batch, marks in in_batches(list(asked)):
                rows = self._query(f"SELECT key FROM suppressions WHERE key IN ({marks})", batch)
                found.update(asked[k] for (k,) in rows)
        return found

    def _forgotten(self) -> bool:
        """Whether the store holds a forgotten mailbox (asked once: an erasure is not made during a send)."""
        if self._any_forgotten is None:
            between = (FORGOTTEN, FORGOTTEN[:-1] + ".")  # every key that starts so ("." follows "-")
            self._any_forgotten = bool(self._query("SELECT 1 FROM suppressions WHERE key >= ? AND key < ? LIMIT 1",
                                                   between))  # fmt: skip
        return self._any_forgotten

    def added(self) -> set[str]:
        """Keys suppressed since the last look (or since this was made); the whole file again when it changed."""
        found = set(self.file_keys) if self._read_file() else set()
        if self._connected():
            rows = self._query("SELECT rowid, key FROM suppressions WHERE rowid > ? ORDER BY rowid", (self._newest,))
            if rows:
                self._newest = rows[-1][0]
            found.update(key for _, key in rows)
        return found

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connected(self) -> bool:
        """Open the store read-only once it exists (`serve` or `bounces` may create it while a send runs)."""
        if self._db is None and self._store.is_file():
            with sqlite_errors(self._store, "cannot read the suppression store"):
                self._db = sqlite3.connect(
                    f"{self._store.as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=False
                )  # a library user may make the send in one thread and run it in another
        return self._db is not None

    def _query(self, sql: str, parameters) -> list[tuple]:
        with sqlite_errors(self._store, "cannot read the suppression store"):
            return self._db.execute(sql, parameters).fetchall()

    def _read_file(self) -> bool:
        """(Re)read the suppression file when it is new or changed; True when it was."""
        if self._file is None:
            return False
        try:
            status = self._file.stat()
        except OSError:
            status = None
        stamp = (status.st_mtime_ns, status.st_size) if status else None
        if stamp is not None and stamp == self._file_stamp:
            return False
        self.file_keys = load_suppressed(self._file)
        self._file_stamp = stamp
        return True


def load_suppressed(path: Path) -> frozenset[str]:
    """Addresses never to send to: a CSV with an `email` column, or one address per line."""
    text = read_data(path)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if lines and "@" not in lines[0]:
        rows = csv.DictReader(io.StringIO(text))
        key = next((c for c in rows.fieldnames or [] if c.strip().lower() == "email"), None)
        if key is None:
            raise DataError("suppression file has no 'email' column", path, 1)
        try:
            return frozenset(mailbox_key(row[key].strip()) for row in rows if row.get(key))
        except csv.Error as error:
            raise DataError(f"not a readable CSV row: {error}", path, rows.line_num or 1) from None
    return frozenset(mailbox_key(line) for line in lines)


def read_data(path: Path) -> str:
    """A list file's text; a missing or unreadable one is bad data (EX_DATAERR), like a malformed one."""
    with data_errors():
        return read_text(path)
