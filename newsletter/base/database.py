"""SQLite files that hold subscriber data (the send journal, the suppression store): one way to open them.

Each is created owner-only (0600, in a 0700 folder) before SQLite touches it, whatever the umask, and one an
earlier version made with the umask's mode is tightened, with its -wal and -shm files (SQLite gives those the
database's mode). WAL with `synchronous=FULL`: a commit is on disk when it returns. SQLite's exceptions become
one `JournalError` line naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import JournalError
from .writer import private_folder

PRIVATE = 0o600


@contextlib.contextmanager
def sqlite_errors(path: Path, doing: str, hint: str = "") -> Iterator[None]:
    """`doing: what SQLite said` (plus `hint` when the file itself is at fault) instead of a traceback."""
    try:
        yield
    except sqlite3.Error as error:
        extra = hint if isinstance(error, sqlite3.DatabaseError) else ""
        raise JournalError(f"{doing}: {error}{extra}", path) from None


def open_private(path: Path, timeout: float) -> sqlite3.Connection:
    """Open (or create) the database at `path` owner-only, in WAL mode with full sync; waits up to `timeout`
    seconds for another writer."""
    private_folder(path.parent)
    try:  # an empty file is an empty database
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        os.chmod(path, PRIVATE)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, PRIVATE)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, path: Path, doing: str, hint: str = "",
                busy: Callable[[], Exception] | None = None) -> Iterator[None]:  # fmt: skip
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the block raises: the write lock is taken up front, so two
    writers never deadlock. SQLite's errors become one `JournalError` line (`doing: what SQLite said`). With
    `busy`, a lock that another process holds raises `busy()` at once (a store opened without waiting)."""
    with sqlite_errors(path, doing, hint):
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if busy is not None and ("locked" in str(error) or "busy" in str(error)):
                raise busy() from None
            raise
        try:
            yield
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


@contextlib.contextmanager
def erasing(db: sqlite3.Connection) -> Iterator[None]:
    """Rows deleted or changed in the block leave no copy in the file: SQLite overwrites the freed bytes
    (secure_delete) and the write-ahead log is emptied into the database afterwards (erasure on request)."""
    db.execute("PRAGMA secure_delete = ON")
    yield
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class StoreBusy(JournalError):
    """Another process holds a store's write lock; only a store opened with `wait=0` says so at once (try again)."""


class Store:
    """A store shared by processes (the suppression store, the subscriber store): cheap to open, safe to open
    from many processes at once, every change one committed transaction.

    `wait` is how long a write waits for another process's transaction. A command waits (30 s); `serve` waits
    not at all and is told `StoreBusy` instead, since SQLite's wait would stop its event loop and every other
    request with it."""

    SCHEMA = ""
    NAME = "store"

    def __init__(self, path: Path, wait: float = 30) -> None:
        self.path = path
        with self._errors():
            self._db = open_private(path, timeout=30)
            self._db.executescript(self.SCHEMA)
            self._db.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return sqlite_errors(self.path, f"cannot use the {self.NAME}")

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """One transaction for several changes, all or none (BEGIN IMMEDIATE)."""
        busy = lambda: StoreBusy(f"the {self.NAME} is busy (another process is writing)", self.path)  # noqa: E731
        return transaction(self._db, self.path, f"cannot use the {self.NAME}", busy=busy)


IN_BATCH = 500  # keys per `IN (...)` query: well under SQLite's limit on parameters


def in_batches(keys: list[str], size: int = IN_BATCH) -> Iterator[tuple[list[str], str]]:
    """`keys` a batch at a time, each with its `?,?,...` placeholders for an `IN (...)` clause."""
    for start in range(0, len(keys), size):
        batch = keys[start : start + size]
        yield batch, ",".join("?" * len(batch))
