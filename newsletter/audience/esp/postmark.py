"""Postmark's bounce and spam complaint webhooks: HTTP basic auth with the user and password set on both sides
(`POSTMARK_WEBHOOK_USER`, `POSTMARK_WEBHOOK_PASSWORD`), one JSON record per request (RecordType `Bounce` or
`SpamComplaint`), its `ID` the event id."""

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
