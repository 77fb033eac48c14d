"""What the journal records about each recipient, and what the send loop hands it.

A recipient moves `pending` -> `sending` (committed before any byte of its message goes out) -> `sent` (only
after the receiver accepted it) or `failed` (refused for good). A row still `sending` when a run starts belonged
to a run that died between claiming it and recording the answer: the server may or may not have the message
(RFC 1047), so it becomes `in-doubt` and is only sent again when the user says so. `skipped` recipients
unsubscribed after the send started.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ...base.model import Recipient


class State(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    IN_DOUBT = "in-doubt"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Claim:
    """A recipient this run now owns: marked `sending`, durably."""

    id: int
    recipient: Recipient
    message_id: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of a claimed recipient: a final state, or `pending` again to retry after `retry_in` seconds.
    `charge_attempt` is False when the failure was the connection's, not the recipient's."""

    state: State
    reply: str = ""
    charge_attempt: bool = True
    retry_in: float = 0.0


@dataclass(frozen=True)
class Wait:
    """No recipient to claim yet: a rate limit is reached, or everyone pending is waiting out a retry delay."""

    seconds: float


@dataclass(frozen=True)
class Step:
    """One connection's turn: the outcome of the recipient it finished (if any), and whether it wants another."""

    finished: Claim | None = None
    outcome: Outcome | None = None
    claim_next: bool = True
