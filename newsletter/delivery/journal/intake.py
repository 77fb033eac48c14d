"""The recipients file flowing into the journal a chunk at a time, as the send needs rows, not all up front.

Each chunk is added in one transaction together with the place in the file it read to, so a run that dies
anywhere leaves a journal that knows exactly where to go on reading; the journal's unique mailbox key keeps a
duplicate out, whichever run meets it. Bad rows and duplicates are reported, by line, as they are met.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice

from ...audience.recipients import RecipientFile, duplicate_problem
from ...base.model import Recipient
from .store import JournalStore

CHUNK = 1024


class Intake:
    """Reads the recipients file on from where the journal says it stopped."""

    def __init__(self, store: JournalStore, source: RecipientFile, message_id: Callable[[Recipient], str],
                 on_problem: Callable[[str], None], expected_lines: int) -> None:  # fmt: skip
        """`expected_lines` is the file's line count, for the estimate of the rows still to come."""
        self.store = store
        self.source = source
        self.message_id = message_id
        self.on_problem = on_problem
        self.expected_lines = expected_lines
        self.position, self.finished = store.read_to()
        self._rows = None if self.finished else source.rows(self.position if self.position.line else None)

    def fill(self, count: int = CHUNK) -> int:
        """Add up to `count` more rows of the file to the journal; returns how many were read (0 at the end)."""
        if self._rows is None:
            return 0
        chunk, read = [], 0
        for row in islice(self._rows, count):
            read += 1
            self.position = row.end
            if row.problem:
                self.on_problem(row.problem)
            else:
                chunk.append((row.recipient, row.key, self.message_id(row.recipient)))
        self.finished = read < count
        for recipient, line in self.store.add(chunk, self.position, self.finished):
            self.on_problem(self.source.problem(recipient.line, duplicate_problem(line, recipient.email)))
        if self.finished:
            self._rows = None
        return read

    def remaining(self) -> int:
        """About how many rows are still to read (lines, so blank lines and bad rows count too)."""
        return 0 if self.finished else max(self.expected_lines - self.position.line, 0)
