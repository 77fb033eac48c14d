"""Recipients: the subscriber CSV (an `email` column, optional `name` and any others), read as a stream.

A list may hold millions of rows, so nothing here holds it whole: `RecipientFile.rows` yields one checked row at
a time, with the byte offset after it, so a send can stop anywhere and go on from there. Bad rows are reported
with their line number and skipped, so one typo does not block a whole edition. An address that differs from an
earlier one only in case is the same mailbox in practice, and is kept once: `SeenKeys` remembers them on
disk, not in memory.
"""

from __future__ import annotations

import csv
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ..base.addresses import mailbox_key, split_mailbox
from ..base.errors import ContentError, DataError
from ..base.files import data_errors, not_utf8, open_bytes
from ..base.headers import check_header_value
from ..base.model import Recipient
from ..base.workspace import SNAPSHOTS_DIR

UTF8_BOM = b"\xef\xbb\xbf"
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Position:
    """Where a read stopped: bytes from the start of the file, and the last line read (1 is the header)."""

    offset: int
    line: int


@dataclass(frozen=True)
class Row:
    """One data row: its recipient, or why it was left out; and where the next row starts."""

    line: int
    recipient: Recipient | None
    problem: str | None
    end: Position
    key: str = ""  # the recipient's mailbox key: what de-duplication and suppression compare


@dataclass(frozen=True)
class Survey:
    """One pass over the raw bytes: the file's SHA-256 (what a resumed send compares) and its line count."""

    sha256: str
    lines: int


class RecipientFile:
    """A recipients CSV, checked header first; its rows are read on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # rows of a snapshot of the subscriber store are named by the list they stand for, not a private file
        self.label = "subscribers" if path.parent.name == SNAPSHOTS_DIR else str(path)
        with self._open() as handle:
            reader, position = self._reader(handle, Position(0, 0))
            header = next(_rows(reader, path), None)
            if header is None:
                raise DataError("recipients file is empty (expected a header row with an 'email' column)", path, 1)
            self.start = position.at
        names = [c.strip().lower() for c in header]
        if "email" not in names:
            raise DataError(f"no 'email' column in the header row (found: {', '.join(header) or 'nothing'})", path, 1)
        if len(set(names)) != len(names):
            raise DataError("duplicate column names in the header row", path, 1)
        self._names = names
        self.columns = tuple(c for c in names if c not in ("email", "name"))  # what templates may use

    def rows(self, since: Position | None = None) -> Iterator[Row]:
        """Every non-blank data row from `since` (default: after the header) to the end, in file order. A row
        the csv module cannot read (a field over its size limit) is a bad row like any other."""
        with self._open() as handle:
            start = since or self.start
            handle.seek(start.offset)
            reader, cursor = self._reader(handle, start)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    problem = self.problem(cursor.at.line, f"not a readable CSV row: {error}")
                    yield Row(cursor.at.line, None, problem, cursor.at)
                    continue
                if any(cell.strip() for cell in cells):
                    yield self._row(cells, cursor.at)

    def survey(self) -> Survey:
        """Hash the file, count its lines and check that it is UTF-8, reading bytes only: quick enough to do
        before every send, so that a file that cannot be read is refused before anything is sent."""
        digest, lines, tail = hashlib.sha256(), 0, b""
        with self._open() as handle:
            while chunk := handle.read(READ_CHUNK):
                digest.update(chunk)
                whole, newline, tail = (tail + chunk).rpartition(b"\n")
                if newline:
                    lines = self._check_utf8(whole, lines)
        lines = self._check_utf8(tail, lines) if tail else lines
        return Survey(digest.hexdigest(), lines)

    def _check_utf8(self, data: bytes, lines_before: int) -> int:
        """Check whole lines of the file; returns the lines counted so far."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = lines_before + data[: exc.start].count(b"\n") + 1
            raise DataError(not_utf8(data, exc), self.path, line) from None
        return lines_before + data.count(b"\n") + 1

    def _row(self, cells: list[str], end: Position) -> Row:
        values = dict(zip(self._names, (cell.strip() for cell in cells), strict=False))  # short rows: missing cells
        display_name, email, problem = split_mailbox(values.get("email", ""))
        problem = problem or _row_problem(values, cells, self._names)
        if problem:
            return Row(end.line, None, self.problem(end.line, problem), end)
        values.pop("email")
        name = values.pop("name", "") or display_name
        recipient = Recipient(email=email, name=name, fields=values, line=end.line)
        return Row(end.line, recipient, None, end, mailbox_key(email))

    def problem(self, line: int, text: str) -> str:
        """A problem found later (a duplicate, a suppressed address), in the same form as a row's own."""
        return f"{self.label}:{line}: {text}"

    def _open(self) -> BinaryIO:
        """The file, opened for bytes; one it cannot open is bad data (EX_DATAERR), like a malformed one."""
        with data_errors():
            return open_bytes(self.path)

    def _reader(self, handle: BinaryIO, start: Position):
        """A csv reader over `handle` and the position it has read to (the csv module pulls exactly the lines
        of each record, so after a row the position is the start of the next one)."""
        position = _Cursor(start)
        return csv.reader(position.lines(handle, self.path)), position


class _Cursor:
    """The decoded lines of a binary file, counting bytes and lines as the csv reader takes them."""

    def __init__(self, start: Position) -> None:
        self.at = start

    def lines(self, handle: BinaryIO, path: Path) -> Iterator[str]:
        offset, line = self.at.offset, self.at.line
        for raw in handle:
            line += 1
            if offset == 0 and raw.startswith(UTF8_BOM):
                raw, offset = raw[len(UTF8_BOM) :], len(UTF8_BOM)
            offset += len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(not_utf8(raw, exc), path, line) from None
            self.at = Position(offset, line)
            yield text


def _rows(reader, path: Path) -> Iterator[list[str]]:
    """The CSV reader's rows, its errors (a field over the size limit, say) as one line naming the row."""
    try:
        yield from reader
    except csv.Error as error:
        raise DataError(f"not a readable CSV row: {error}", path, reader.line_num or 1) from None


def _row_problem(values: dict[str, str], cells: list[str], columns: list[str]) -> str | None:
    if len(cells) > len(columns):
        return f"{len(cells)} fields but the header names {len(columns)}"
    try:
        check_header_value("name", values.get("name", ""))
    except ContentError as exc:
        return exc.message
    return None


def duplicate_problem(earlier_line: int | None, email: str, kept: str = "sent once") -> str:
    return f"duplicate of line {earlier_line} ({email}), {kept}"


SUPPRESSED_PROBLEM = "unsubscribed (in the suppression list), skipped"


class SeenKeys:
    """The keys (mailboxes, file names) met so far in one pass over a list, and the line each was first met on.

    On disk (a temporary SQLite file that is gone when closed), so remembering ten million costs no memory."""

    def __init__(self, earlier: Callable[[str], int | None] | None = None) -> None:
        """`earlier(key)`: the line of a mailbox met in an earlier pass (a resumed send's journal), or None."""
        self._earlier = earlier
        self._db = sqlite3.connect("", isolation_level=None)  # "": a private temporary file
        self._db.execute("PRAGMA cache_size = -8000")  # 8 MB, whatever the count
        self._db.execute("PRAGMA journal_mode = OFF")  # a rollback journal of one long transaction stays in memory
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def first_line(self, key: str, line: int) -> int | None:
        """None the first time `key` is met (it is remembered); after that, the line it was first met on."""
        if self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (key, line)).rowcount:
            return self._earlier(key) if self._earlier else None
        return self._db.execute("SELECT line FROM seen WHERE key = ?", (key,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()


@dataclass
class RecipientList:
    """A small list read whole (the library's convenience; sends and exports stream instead)."""

    path: Path
    recipients: list[Recipient] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)


def load_recipients(path: Path, suppressed: frozenset[str] = frozenset()) -> RecipientList:
    """Read, check and de-duplicate a whole recipients CSV into memory."""
    source = RecipientFile(path)
    result = RecipientList(path, columns=source.columns)
    seen = SeenKeys()
    try:
        for checked in checked_rows(source, seen, lambda keys: suppressed & set(keys)):
            if checked.problem:
                result.problems.append(checked.problem)
            else:
                result.recipients.append(checked.row.recipient)
    finally:
        seen.close()
    return result


class Checked(NamedTuple):
    """A row and what is wrong with it, if anything: bad, a duplicate, or suppressed (`suppressed` True)."""

    row: Row
    problem: str | None = None
    suppressed: bool = False


def checked_rows(source: RecipientFile, seen: SeenKeys, suppressed_among, since: Position | None = None,
                 batch: int = 500, kept: str = "sent once") -> Iterator[Checked]:  # fmt: skip
    """Each row with its problem, in file order, checking suppression `batch` rows at a time through
    `suppressed_among(keys) -> the set of those suppressed` (a store is asked, not loaded). `kept` says what
    becomes of an address met twice."""
    waiting: list[Row] = []
    for row in source.rows(since):
        earlier = None if row.problem else seen.first_line(row.key, row.line)
        if row.problem or earlier is not None:
            yield from _suppression_checked(source, waiting, suppressed_among)
            problem = row.problem or source.problem(row.line, duplicate_problem(earlier, row.recipient.email, kept))
            yield Checked(row, problem)
            continue
        waiting.append(row)
        if len(waiting) >= batch:
            yield from _suppression_checked(source, waiting, suppressed_among)
    yield from _suppression_checked(source, waiting, suppressed_among)


def _suppression_checked(source: RecipientFile, waiting: list[Row], suppressed_among) -> Iterator[Checked]:
    if not waiting:
        return
    suppressed = suppressed_among([row.key for row in waiting])
    for row in waiting:
        if row.key in suppressed:
            yield Checked(row, source.problem(row.line, SUPPRESSED_PROBLEM), suppressed=True)
        else:
            yield Checked(row)
    waiting.clear()
