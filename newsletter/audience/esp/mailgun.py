"""Mailgun's webhooks: `signature.signature` is HMAC-SHA256 of `timestamp + token` with the webhook signing key
(`MAILGUN_WEBHOOK_SIGNING_KEY`). A timestamp more than MAX_AGE away from now is refused, and so is a token
seen before (`record` keeps them): a captured request cannot be played again. Events `failed` (severity
permanent or temporary) and `complained`; the event's `id` is its id."""

from __future__ import annotations

import hashlib
import hmac

from ..events import UNSUBSCRIBE, Event, HookRefused, check_fresh, failure, mapping, seconds
from .settings import HookSettings

# Mailgun's `reason` of a failure -> the reason when the delivery status says nothing known
REASONS = {
    "suppress-bounce": "userunknown", "suppress-complaint": "feedback", "suppress-unsubscribe": UNSUBSCRIBE,
    "espblock": "blocked", "old": "expired", "bounce": "undefined", "generic": "undefined",
}  # fmt: skip


def verify_mailgun(payload: object, settings: HookSettings, now: float | None = None) -> str:
    """The request's token, once its signature and time check out; else HookRefused."""
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        raise HookRefused("not a Mailgun webhook (no signature)", 400)
    timestamp, token, given = (str(signature.get(name, "")) for name in ("timestamp", "token", "signature"))
    expected = hmac.new(settings.mailgun_key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not token or not hmac.compare_digest(expected, given.lower()):
        raise HookRefused("Mailgun signature does not verify")
    check_fresh(timestamp, "Mailgun", now)
    return token


def mailgun_events(payload: dict) -> list[Event]:
    """The event of a verified Mailgun webhook (none for delivered, opened and the like)."""
    data = payload.get("event-data")
    if not isinstance(data, dict) or data.get("event") not in ("failed", "complained"):
        return []
    event_id, address = str(data.get("id", "")), str(data.get("recipient", ""))
    if not event_id or not address:
        raise HookRefused("Mailgun event without id or recipient", 400)
    headers = mapping(mapping(data, "message"), "headers")
    more = {"message_id": _bracketed(str(headers.get("message-id", ""))), "at": seconds(data.get("timestamp"))}
    if data["event"] == "complained":
        return [Event("mailgun", event_id, address, "feedback", True, "spam complaint through Mailgun", **more)]
    status = mapping(data, "delivery-status")
    detail = " ".join(str(status.get(name) or "") for name in ("code", "message", "description")).strip()
    reason = str(data.get("reason", ""))
    if reason.startswith("suppress-"):
        detail = f"{detail} (Mailgun suppression)"
    return [failure("mailgun", event_id, address, detail, str(status.get("enhanced-code") or ""),
                    REASONS.get(reason, "undefined"), data.get("severity") == "permanent", **more)]  # fmt: skip


def _bracketed(message_id: str) -> str:
    """Mailgun gives Message-IDs without their angle brackets."""
    return f"<{message_id.strip('<>')}>" if message_id else ""
