"""Recording providers' events: each request in one transaction, each event once (by its id), each judged by
`bounces` with the same reasons and policy as a DSN."""

from __future__ import annotations

from collections import Counter

from ...base.workspace import Workspace
from ..bounces import BounceReader, SentMail, shown
from ..events import Event, HookRefused


def record_events(workspace: Workspace, sent: SentMail, events: list[Event], token: str = "") -> Counter:
    """Act on verified `events`, all or none; counts by kind, `repeated` for events seen before and
    `suppressed`. A `token` (Mailgun's, one per request) seen before refuses the whole request."""
    reader = BounceReader(workspace, sent)
    counts: Counter = Counter()
    try:
        with reader.store.transaction():
            if token and not reader.store.first_time(f"token:{token}"):
                raise HookRefused("webhook token used before: refused as a replay")
            for event in events:
                if not reader.store.first_time(f"{event.provider}:{event.id}"):
                    counts["repeated"] += 1
                    continue
                verdict = reader.event_verdict(event)
                counts[verdict.kind] += 1
                counts["suppressed"] += reader.act(shown(verdict))
    finally:
        reader.close()
    return counts
