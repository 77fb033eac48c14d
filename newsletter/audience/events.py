"""Delivery events as an email service provider reports them: one failure (or complaint) of one recipient.

Amazon SES, Postmark, Mailgun and SendGrid own the return path of the mail they relay, so bounces and
complaints reach the publisher as webhooks (SES: through Amazon SNS, or as a JSON notice by mail) instead of
DSNs. Each provider's module (`esp/`) verifies its signature and reads its format into `Event`s; `bounces`
judges an event with the same reasons and policy as a DSN, and `esp.record` stores it once per event id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from ..base.errors import NewsletterError
from . import reasons


@dataclass(frozen=True)
class Event:
    provider: str  # "ses", "postmark", "mailgun", "sendgrid"
    id: str  # the provider's id of the event: a repeat of it changes nothing
    address: str  # the recipient it is about, as the provider names it
    reason: str  # in the vocabulary of `reasons`, or "unsubscribe"
    permanent: bool  # the provider's word on whether the failure is for good
    detail: str = ""  # the diagnostic, as the provider gives it
    message_id: str = ""  # the Message-ID of the message reported on, when the provider passes it on
    at: float = 0.0  # when it happened (0: now)
    verified: bool = True  # signed by the provider (a notice read from a mailbox is not)


UNSUBSCRIBE = "unsubscribe"  # a provider telling of a recipient's unsubscribe request: not a failure reason


def kind_of(event: Event) -> str:
    """What the event does to its address, in `bounces`' kinds: bounce, soft-bounce, refused, complaint,
    unsubscribe, or other (not a failure)."""
    return "unsubscribe" if event.reason == UNSUBSCRIBE else reasons.kind(event.reason, event.permanent)


def failure(provider: str, event_id: str, address: str, detail: str, status: str = "", fallback: str = "undefined",
            permanent: bool | None = None, **more) -> Event:  # fmt: skip
    """An event for one failed delivery: the reason from the provider's words and status first (as for a DSN),
    its own classification (`fallback`) when those say nothing known; permanent as the status says, else as
    the provider says. A provider's verdict that is no delivery failure (a complaint, an unsubscribe: its
    suppression list speaking) stands as it is."""
    if fallback in (UNSUBSCRIBE, "feedback"):
        return Event(provider, event_id, address, fallback, True, " ".join(detail.split())[:500], **more)
    why = reasons.reason(detail, status)
    if why == "undefined":
        why = fallback
    if permanent is None or reasons.status_of(status, detail):
        permanent = reasons.permanent(status, detail, "failed" if permanent in (None, True) else "delayed")
    return Event(provider, event_id, address, why, permanent, " ".join(detail.split())[:500], **more)


def mapping(record: dict, name: str) -> dict:
    """A JSON object inside a provider's payload, or {} when it is missing or something else."""
    value = record.get(name)
    return value if isinstance(value, dict) else {}


def iso_time(stamp: object) -> float:
    """An ISO 8601 time as providers write it (`2026-11-05T16:33:54.9070259Z`), or 0 when it is none."""
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return 0.0


def seconds(value: object) -> float:
    """A Unix time as providers write it (a number or a string of one), or 0 when it is none."""
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


MAX_AGE = 300  # seconds, either way, that a signed request's timestamp may be from now


def check_fresh(timestamp: str, provider: str, now: float | None = None) -> None:
    """HookRefused for a signed timestamp more than MAX_AGE from now: a captured request played again later."""
    stamp = seconds(timestamp)
    if not stamp or abs((time.time() if now is None else now) - stamp) > MAX_AGE:
        raise HookRefused(f"{provider} webhook too old (or from the future): refused as a replay")


class HookRefused(NewsletterError):
    """A webhook request that is not a verified message of the provider: answered `status`, nothing written."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status
