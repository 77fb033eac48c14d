"""Recipients: the subscriber CSV (an `email` column, optional `name` and any others) and the suppression list.

Bad rows are reported with their line number and skipped, so one typo does not block a whole edition; an address
that differs from an earlier one only in case is the same mailbox in practice, and is kept once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..base.addresses import mailbox_key, split_mailbox
from ..base.errors import ContentError, DataError
from ..base.files import read_text
from ..base.headers import check_header_value
from ..base.model import Recipient
from ..base.workspace import Workspace
from .suppressions import stored_keys


@dataclass
class RecipientList:
    """The valid recipients in file order, the extra columns templates may use, and what was skipped and why."""

    path: Path
    recipients: list[Recipient] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)


def load_recipients(path: Path, suppressed: frozenset[str] = frozenset()) -> RecipientList:
    """Read and validate a recipients CSV; raises ContentError only when the file as a whole is unusable."""
    reader = csv.reader(io.StringIO(read_data(path), newline=""))
    rows = _rows(reader, path)
    header = next(rows, None)
    if header is None:
        raise DataError("recipients file is empty (expected a header row with an 'email' column)", path, 1)
    columns = [c.strip().lower() for c in header]
    if "email" not in columns:
        raise DataError(f"no 'email' column in the header row (found: {', '.join(header) or 'nothing'})", path, 1)
    if len(set(columns)) != len(columns):
        raise DataError("duplicate column names in the header row", path, 1)
    result = RecipientList(path, columns=tuple(c for c in columns if c not in ("email", "name")))
    seen: dict[str, int] = {}
    for row in rows:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        values = dict(zip(columns, (cell.strip() for cell in row), strict=False))  # short rows: missing cells
        display_name, email, address_problem = split_mailbox(values.get("email", ""))
        key = mailbox_key(email)
        problem = _row_problem(values, row, columns, address_problem, seen.get(key), email)
        if problem is None and key in suppressed:
            problem = "unsubscribed (in the suppression list), skipped"
        if problem:
            result.problems.append(f"{path}:{line}: {problem}")
            continue
        seen[key] = line
        values.pop("email")
        name = values.pop("name", "") or display_name
        result.recipients.append(Recipient(email=email, name=name, fields=values, line=line))
    return result


def read_data(path: Path) -> str:
    """A list file's text; a missing or unreadable one is bad data (EX_DATAERR), like a malformed one."""
    try:
        return read_text(path)
    except ContentError as error:
        raise DataError(error.message, error.path, error.line) from None


def _rows(reader, path: Path):
    """The CSV reader's rows, its errors (a field over the size limit, say) as one line naming the row."""
    try:
        yield from reader
    except csv.Error as error:
        raise DataError(f"not a readable CSV row: {error}", path, reader.line_num or 1) from None


def _row_problem(values: dict[str, str], row: list[str], columns: list[str], address_problem: str | None,
                 duplicate_of: int | None, email: str) -> str | None:  # fmt: skip
    if len(row) > len(columns):
        return f"{len(row)} fields but the header names {len(columns)}"
    if address_problem:
        return address_problem
    if duplicate_of is not None:
        return f"duplicate of line {duplicate_of} ({email}), sent once"
    try:
        check_header_value("name", values.get("name", ""))
    except ContentError as exc:
        return exc.message
    return None


def suppressed_addresses(workspace: Workspace) -> frozenset[str]:
    """Everyone never to mail (mailbox keys): the suppression store, and the publication's `suppression_file`
    (relative to the workspace) when it names one."""
    listed = workspace.publication.suppression_file
    return load_suppressed(workspace.root / listed if listed else None) | stored_keys(workspace.suppressions)


def load_suppressed(path: Path | None) -> frozenset[str]:
    """Addresses never to send to: a CSV with an `email` column, or one address per line."""
    if path is None:
        return frozenset()
    text = read_data(path)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if lines and "@" not in lines[0]:
        rows = csv.DictReader(io.StringIO(text))
        key = next((c for c in rows.fieldnames or [] if c.strip().lower() == "email"), None)
        if key is None:
            raise DataError("suppression file has no 'email' column", path, 1)
        return frozenset(mailbox_key(row[key].strip()) for row in _rows(rows, path) if row.get(key))
    return frozenset(mailbox_key(line) for line in lines)
