"""The send journal: the exactly-once ledger of a send, one SQLite file per edition.

Its parts: `states` (what is recorded), `store` (the durable file), `queue` (pending recipients in memory),
`limits` (rate limits), `ledger` (the three together for a run), `reader` (read-only, for `status`).
"""

from .ledger import Journal
from .limits import RateLimit, RateLimiter
from .queue import PendingQueue
from .reader import JournalReader, SentJournals, journal_path, open_existing, sent_editions
from .states import Claim, Outcome, State, Step, Wait
from .store import JournalStore

__all__ = [
    "Claim",
    "Journal",
    "JournalReader",
    "JournalStore",
    "Outcome",
    "PendingQueue",
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
