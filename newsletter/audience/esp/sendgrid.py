"""SendGrid's signed Event Webhook: an ECDSA (P-256, SHA-256) signature, base64 DER in the
`X-Twilio-Email-Event-Webhook-Signature` header, over the `X-Twilio-Email-Event-Webhook-Timestamp` header
followed by the raw body, checked with the public key SendGrid shows (`SENDGRID_WEBHOOK_PUBLIC_KEY`). A
timestamp more than MAX_AGE from now is refused. The body is a JSON array of events; `bounce` (type `bounce`
or `blocked`), `dropped` and `spamreport` are read, each by its `sg_event_id`."""

from __future__ import annotations

import base64
import binascii

from ..events import UNSUBSCRIBE, Event, HookRefused, check_fresh, failure, seconds
from .settings import HookSettings

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"

# SendGrid's bounce_classification -> the reason when the bounce's own words say nothing known
CLASSIFICATIONS = {
    "Invalid Address": "userunknown", "Mailbox Unavailable": "mailboxfull", "Technical": "systemerror",
    "Content": "contenterror", "Reputation": "blocked", "Frequency or Volume": "speeding",
}  # fmt: skip
# why SendGrid dropped a message without trying it -> reason
DROPPED = {
    "bounced address": "userunknown", "invalid": "userunknown", "spam reporting address": "feedback",
    "unsubscribed address": UNSUBSCRIBE, "exceeded maximum message size": "mesgtoobig",
}  # fmt: skip


def verify_sendgrid(headers: dict[str, str], body: bytes, settings: HookSettings, now: float | None = None) -> None:
    """HookRefused unless the body is signed with SendGrid's key, recently."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    timestamp = headers.get(TIMESTAMP, "")
    try:
        signature = base64.b64decode(headers.get(SIGNATURE, ""), validate=True)
        key = load_der_public_key(settings.sendgrid_key)
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        raise HookRefused("SendGrid signature does not verify") from None
    check_fresh(timestamp, "SendGrid", now)


def sendgrid_events(batch: object) -> list[Event]:
    """The events of a verified batch that say something about an address."""
    if not isinstance(batch, list):
        raise HookRefused("SendGrid webhook body is not a list of events", 400)
    return [event for item in batch if isinstance(item, dict) and (event := _event(item)) is not None]


def _event(item: dict) -> Event | None:
    kind, event_id, address = item.get("event"), str(item.get("sg_event_id", "")), str(item.get("email", ""))
    if kind not in ("bounce", "dropped", "spamreport") or not event_id or not address:
        return None
    more = {"message_id": str(item.get("smtp-id", "")), "at": seconds(item.get("timestamp"))}
    detail = str(item.get("reason", ""))
    if kind == "spamreport":
        return Event("sendgrid", event_id, address, "feedback", True, "spam report through SendGrid", **more)
    if kind == "dropped":
        why = DROPPED.get(detail.strip().lower())
        return failure("sendgrid", event_id, address, f"dropped by SendGrid: {detail}", "", why or "undefined",
                       why is not None, **more)  # fmt: skip
    blocked = item.get("type") == "blocked"
    fallback = CLASSIFICATIONS.get(str(item.get("bounce_classification", "")), "blocked" if blocked else "undefined")
    return failure("sendgrid", event_id, address, detail, str(item.get("status", "")), fallback, not blocked, **more)
