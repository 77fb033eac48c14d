"""Postmark's bounce and spam complaint webhooks: HTTP basic auth with the user and password set on both sides
(`POSTMARK_WEBHOOK_USER`, `POSTMARK_WEBHOOK_PASSWORD`), one JSON record per request. A transactional stream
sends `Bounce` and `SpamComplaint` records (their `ID` the event id); a broadcast stream, where newsletters go,
sends `SubscriptionChange` records instead (`SuppressSending` with a `SuppressionReason`), which carry no id of
their own: the message, recipient, time and reason together are one."""

from __future__ import annotations

import base64
import binascii
import hmac

from ..events import UNSUBSCRIBE, Event, HookRefused, failure, iso_time
from .settings import HookSettings

# Postmark's bounce Type -> (reason when its Details say nothing known, permanent)
TYPES = {
    "HardBounce": ("userunknown", True), "BadEmailAddress": ("userunknown", True),
    "ManuallyDeactivated": ("userunknown", True), "DnsError": ("hostunknown", False),
    "SoftBounce": ("undefined", False), "Transient": ("expired", False), "Blocked": ("blocked", True),
    "SpamNotification": ("spamdetected", True), "VirusNotification": ("contenterror", True),
    "DMARCPolicy": ("policyviolation", True), "ContentRelated": ("contenterror", True),
    "SMTPApiError": ("systemerror", False), "AutoResponder": ("vacation", False),
    "OutOfOffice": ("vacation", False), "ChallengeVerification": ("onhold", False),
    "AddressChange": ("onhold", False), "Subscribe": ("delivered", False), "Unknown": ("undefined", False),
}  # fmt: skip


def check_auth(authorization: str, settings: HookSettings) -> None:
    """HookRefused (401) unless the request carries the configured basic credentials."""
    scheme, _, encoded = authorization.partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        user, password = "", ""
    same_user = hmac.compare_digest(user.encode(), settings.postmark_user.encode())
    same_password = hmac.compare_digest(password.encode(), settings.postmark_password.encode())
    if scheme.lower() != "basic" or not (same_user and same_password):
        raise HookRefused("Postmark webhook: wrong or missing basic auth credentials", 401)


def postmark_events(record: object) -> list[Event]:
    """The event of one Postmark webhook record (none for records of other kinds)."""
    if isinstance(record, dict) and record.get("RecordType") == "SubscriptionChange":
        return _subscription_change(record)
    if not isinstance(record, dict) or record.get("RecordType") not in ("Bounce", "SpamComplaint"):
        return []
    event_id, address = str(record.get("ID", "")), str(record.get("Email", ""))
    if not event_id or not address:
        raise HookRefused("Postmark record without ID or Email", 400)
    at = iso_time(record.get("BouncedAt"))
    kind = str(record.get("Type", ""))
    if record["RecordType"] == "SpamComplaint" or kind == "SpamComplaint":
        return [Event("postmark", event_id, address, "feedback", True, "spam complaint through Postmark", at=at)]
    if kind == "Unsubscribe":
        return [Event("postmark", event_id, address, UNSUBSCRIBE, True, "unsubscribe request through Postmark", at=at)]
    fallback, permanent = TYPES.get(kind, ("undefined", False))
    detail = f"{record.get('Details') or ''} {record.get('Description') or ''}".strip() or kind
    return [failure("postmark", event_id, address, detail, "", fallback, permanent, at=at)]


# SubscriptionChange's SuppressionReason -> (reason, what it says)
SUPPRESSION_REASONS = {
    "HardBounce": ("userunknown", "hard bounce"),
    "SpamComplaint": ("feedback", "spam complaint"),
    "ManualSuppression": (UNSUBSCRIBE, "unsubscribed"),
}


def _subscription_change(record: dict) -> list[Event]:
    """A broadcast stream's suppression; a reactivation (SuppressSending false) lifts nothing here: a bounce or
    complaint stays the publisher's to lift (`unsuppress`)."""
    address, why = str(record.get("Recipient", "")), SUPPRESSION_REASONS.get(str(record.get("SuppressionReason")))
    if record.get("SuppressSending") is not True or why is None:
        return []
    if not address:
        raise HookRefused("Postmark record without Recipient", 400)
    event_id = ":".join(str(record.get(name, "")) for name in ("MessageID", "Recipient", "ChangedAt",
                                                                 "SuppressionReason"))  # fmt: skip
    reason, said = why
    detail = f"{said} through Postmark (origin: {record.get('Origin') or 'unknown'})"
    return [Event("postmark", event_id, address, reason, True, detail, at=iso_time(record.get("ChangedAt")))]
