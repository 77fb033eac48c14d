"""What a send reports: progress while it runs, and how a run ended, in values rather than prose."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    """Counts for the progress line and the summary; `done` includes what earlier runs finished.

    `note` is the latest thing the user should know while it runs (a connection problem, a slow-down)."""

    total: int
    sent: int = 0
    failed: int = 0
    in_doubt: int = 0
    skipped: int = 0
    sent_this_run: int = 0
    connections: int = 1
    connections_allowed: int = 1
    note: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.in_doubt + self.skipped

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent_this_run / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class StopReason(enum.Enum):
    """Why a run ended before everyone was done."""

    INTERRUPTED = "interrupted"  # Ctrl-C: run the same command again to go on
    REQUESTED = "stopped on request"  # `Send.stop()` from another thread
    FAILING = "failing"  # nothing got through for too long, or too many failures in a row
    SETUP = "settings"  # the delivery settings cannot work (login refused, certificate untrusted): fix them
    JOURNAL = "journal"  # the journal could not be written: nothing more can be recorded safely

    @property
    def fatal(self) -> bool:
        """Running again as is will not help: something must be fixed first."""
        return self in (StopReason.SETUP, StopReason.JOURNAL)


@dataclass
class SendReport:
    """How a run ended: the counts, why it stopped early (None when it did not, with the words that say how),
    and notes for the user."""

    progress: Progress
    stop: StopReason | None = None
    stop_detail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def stop_reason(self) -> str:
        """Why the run stopped, in words for the user ('' when it did not)."""
        return self.stop_detail or (self.stop.value if self.stop else "")

    @property
    def fatal(self) -> bool:
        return self.stop is not None and self.stop.fatal

    @property
    def complete(self) -> bool:
        return self.stop is None and self.progress.done == self.progress.total

    @property
    def interrupted(self) -> bool:
        return self.stop is StopReason.INTERRUPTED
