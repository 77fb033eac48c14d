"""Amazon SES bounce and complaint notices, as Amazon SNS posts them (signed) or as a mailbox receives them.

An SNS message is trusted only once its signature verifies with the certificate at its `SigningCertURL`, and
that URL is trusted only over https from `sns.<region>.amazonaws.com` (the certificate is fetched once per URL
and kept; `SES_SIGNING_CERT_FILE` supplies it instead, for tests and servers that may not fetch). The topic
must be one of `SES_TOPIC_ARNS`. A SubscriptionConfirmation is confirmed by fetching its SubscribeURL under the
same host rule. SignatureVersion 1 signs with SHA-1, 2 with SHA-256 (RSA, PKCS #1 v1.5), over the fields
below as `name\\nvalue\\n`, in this order.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Callable

from ..events import Event, HookRefused, failure, iso_time, mapping
from .settings import HookSettings

SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL = {"Subject"}
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
SNS_NAME = re.compile(r"sns(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")  # the common name of SNS signing certificates
FETCH_TIMEOUT = 10.0
CACHED = 16  # signing certificates kept (SNS rotates them rarely)

# bounceSubType -> reason, for a bounce whose own words and status say nothing known
SUBTYPES = {
    ("Permanent", "General"): "userunknown", ("Permanent", "NoEmail"): "userunknown",
    ("Permanent", "Suppressed"): "userunknown", ("Permanent", "OnAccountSuppressionList"): "userunknown",
    ("Transient", "MailboxFull"): "mailboxfull", ("Transient", "MessageTooLarge"): "mesgtoobig",
    ("Transient", "ContentRejected"): "contenterror", ("Transient", "AttachmentRejected"): "contenterror",
}  # fmt: skip


def sns_url(url: str) -> str:
    """`url` when it is https on an SNS host; else HookRefused (a forged message names a server of its own)."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme != "https" or parts.port not in (None, 443) or parts.username or not SNS_HOST.fullmatch(
            parts.hostname or ""):  # fmt: skip
        raise HookRefused("SigningCertURL and SubscribeURL must be https://sns.<region>.amazonaws.com/...")
    return url


def fetch(url: str) -> bytes:
    """GET over https with the certificate and host name verified (the default context), no redirects."""

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirects)
    with opener.open(sns_url(url), timeout=FETCH_TIMEOUT) as response:
        return response.read(1 << 20)


class Certificates:
    """SNS signing keys by certificate URL: the pinned certificate when one is set, else fetched and kept."""

    def __init__(self, pinned: bytes = b"", fetch: Callable[[str], bytes] = fetch) -> None:
        self.pinned, self.fetch = pinned, fetch
        self._keys: dict[str, object] = {}

    def key_for(self, url: str):
        sns_url(url)
        if url not in self._keys:
            from cryptography import x509
            from cryptography.x509.oid import NameOID

            try:
                certificate = x509.load_pem_x509_certificate(self.pinned or self.fetch(url))
            except (OSError, ValueError) as error:
                raise HookRefused(f"cannot get the SNS signing certificate: {error}", 503) from None
            names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not names or not SNS_NAME.fullmatch(str(names[0].value)):
                raise HookRefused("the signing certificate is not Amazon SNS's")
            if len(self._keys) >= CACHED:
                self._keys.clear()
            self._keys[url] = certificate.public_key()
        return self._keys[url]


def verify_sns(envelope: dict, settings: HookSettings, certificates: Certificates) -> None:
    """HookRefused unless `envelope` is an SNS message of an accepted topic, signed by SNS."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    fields = SIGNED_FIELDS.get(envelope.get("Type"))
    if fields is None or any(not isinstance(envelope.get(name), str) for name in fields if name not in OPTIONAL):
        raise HookRefused("not an Amazon SNS message", 400)
    if envelope["TopicArn"] not in settings.ses_topic_arns:
        raise HookRefused("SNS topic not accepted (SES_TOPIC_ARNS)")
    digest = {"1": hashes.SHA1, "2": hashes.SHA256}.get(str(envelope.get("SignatureVersion")))
    if digest is None:
        raise HookRefused("unknown SNS SignatureVersion", 400)
    signed = "".join(f"{name}\n{envelope[name]}\n" for name in fields if name in envelope)
    try:
        signature = base64.b64decode(str(envelope.get("Signature", "")), validate=True)
        key = certificates.key_for(str(envelope.get("SigningCertURL", "")))
        key.verify(signature, signed.encode(), padding.PKCS1v15(), digest())
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        raise HookRefused("SNS signature does not verify") from None


def sns_events(envelope: dict) -> list[Event]:
    """The SES events of a verified SNS Notification (none for another kind of notice)."""
    try:
        notice = json.loads(envelope["Message"])
    except ValueError:
        return []
    return notice_events(notice, envelope["MessageId"], verified=True) if isinstance(notice, dict) else []


def notice_events(notice: dict, event_id: str, verified: bool) -> list[Event]:
    """One event per bounced or complaining recipient of an SES notice (notification or event publishing
    format); an id of `event_id#N` each."""
    kind = notice.get("notificationType") or notice.get("eventType")
    more = {"message_id": _message_id(mapping(notice, "mail")), "verified": verified}
    if kind == "Bounce" and (bounce := mapping(notice, "bounce")):
        fallback = SUBTYPES.get((bounce.get("bounceType"), bounce.get("bounceSubType")), "undefined")
        at = iso_time(bounce.get("timestamp"))
        return [failure("ses", f"{event_id}#{n}", str(r.get("emailAddress", "")), str(r.get("diagnosticCode", "")),
                        str(r.get("status", "")), fallback, bounce.get("bounceType") == "Permanent", at=at, **more)
                for n, r in enumerate(_listed(bounce, "bouncedRecipients"))]  # fmt: skip
    if kind == "Complaint" and (complaint := mapping(notice, "complaint")):
        detail = f"{complaint.get('complaintFeedbackType') or 'abuse'} complaint through Amazon SES"
        return [Event("ses", f"{event_id}#{n}", str(r.get("emailAddress", "")), "feedback", True, detail,
                      at=iso_time(complaint.get("timestamp")), **more)
                for n, r in enumerate(_listed(complaint, "complainedRecipients"))]  # fmt: skip
    return []


def mailed_notice(text: str) -> tuple[dict, str] | None:
    """(notice, id) of an SES notice that came by mail (an SNS email-JSON subscription, or the notice alone),
    or None when the text is no such notice."""
    try:
        notice = json.loads(text)
    except ValueError:
        return None
    if isinstance(notice, dict) and notice.get("Type") == "Notification" and isinstance(notice.get("Message"), str):
        return mailed_notice(notice["Message"])
    if not isinstance(notice, dict) or not (notice.get("notificationType") or notice.get("eventType")):
        return None
    detail = mapping(notice, "bounce") or mapping(notice, "complaint")
    return notice, str(detail.get("feedbackId", ""))


def _listed(record: dict, name: str) -> list[dict]:
    items = record.get(name)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _message_id(mail: dict) -> str:
    """The Message-ID the reported message carried: from its headers, else SES's common headers."""
    headers = mail.get("headers") if isinstance(mail.get("headers"), list) else []
    for header in headers:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    return str(mapping(mail, "commonHeaders").get("messageId", ""))
