"""The send journal: the exactly-once ledger of a send, one SQLite file per edition.

Its parts: `states` (what is recorded), `store` (the durable file), `intake` (the list file flowing into it),
`queue` (the bounded window of pending recipients in memory), `limits` (rate limits), `ledger` (these together
for a run), `reader` (read-only, for `status`).
"""

from .intake import CHUNK, Intake
from .ledger import Journal
from .limits import RateLimit, RateLimiter
from .queue import Pending, PendingWindow
from .reader import JournalReader, SentJournals, journal_path, open_existing, sent_editions
from .states import Claim, Outcome, State, Step, Wait
from .store import JournalStore

__all__ = [
    "CHUNK",
    "Claim",
    "Intake",
    "Journal",
    "JournalReader",
    "JournalStore",
    "Outcome",
    "Pending",
    "PendingWindow",
    "RateLimit",
    "RateLimiter",
    "SentJournals",
    "State",
    "Step",
    "Wait",
    "journal_path",
    "open_existing",
    "sent_editions",
]
