"""`POST /hooks/PROVIDER`: bounce and complaint events from Amazon SES (through SNS), Postmark, Mailgun and
SendGrid, the relays that own the return path of the mail they carry.

Each request is verified before anything is read from it (a signature, or Postmark's basic auth); a request
that does not verify is answered 401 or 403 and writes nothing. A provider whose settings are not set has no
webhook (404). A verified request is recorded whole, each event once by its id, so a provider's retry changes
nothing. The answer is a short text: providers read only the status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from ..audience.esp import ses
from ..audience.esp.mailgun import mailgun_events, verify_mailgun
from ..audience.esp.postmark import check_auth, postmark_events
from ..audience.esp.record import record_events
from ..audience.esp.sendgrid import sendgrid_events, verify_sendgrid
from ..audience.esp.settings import PROVIDERS, hook_settings
from ..audience.events import Event, HookRefused
from ..base.workspace import Workspace
from ..delivery.journal import SentJournals

log = logging.getLogger("newsletter.serve")
HOOK_BODY = 1 << 20  # bytes: an SNS message is at most 256 KB, a SendGrid batch far less than this


class Hooks:
    """The webhooks of one publication. `fetch` gets an https URL (SNS certificates and SubscribeURLs, on
    SNS hosts only); a test passes its own, since tests touch no network."""

    def __init__(self, workspace: Workspace, fetch: Callable[[str], bytes] | None = None) -> None:
        self.workspace = workspace
        self.settings = hook_settings(workspace.settings)
        self.fetch = fetch or ses.fetch
        self.certificates = ses.Certificates(self.settings.ses_certificate, self.fetch)

    def enabled(self, provider: str) -> bool:
        return provider in PROVIDERS and self.settings.enabled(provider)

    def answer(self, provider: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """(HTTP status, text) for one request; blocking (a certificate fetch, the store): run it in a thread."""
        try:
            events, token = self._verified(provider, headers, body)
            if events is None:
                return 200, "ok"
            sent = SentJournals(self.workspace.root, self.workspace.publication.list_id)
            try:
                counts = record_events(self.workspace, sent, events, token)
            finally:
                sent.close()
        except HookRefused as refused:
            log.warning("refused a %s webhook request: %s", provider, refused.message)
            return refused.status, refused.message
        log.info("%s webhook: %s", provider, ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "nothing")
        return 200, f"ok: {sum(n for k, n in counts.items() if k != 'suppressed')} event(s)"

    def _verified(self, provider: str, headers: Mapping[str, str], body: bytes) -> tuple[list[Event] | None, str]:
        """The events of a request once it verifies, and its one-time token; None for a verified request that
        carries no events (an SNS subscription handshake)."""
        if provider == "postmark":
            check_auth(headers.get("authorization", ""), self.settings)
            return postmark_events(_json(body)), ""
        if provider == "sendgrid":
            verify_sendgrid(headers, body, self.settings)
            return sendgrid_events(_json(body)), ""
        payload = _json(body)
        if provider == "mailgun":
            token = verify_mailgun(payload, self.settings)
            return mailgun_events(payload), token
        if not isinstance(payload, dict):
            raise HookRefused("not an Amazon SNS message", 400)
        ses.verify_sns(payload, self.settings, self.certificates)
        if payload["Type"] == "Notification":
            return ses.sns_events(payload), ""
        if payload["Type"] == "SubscriptionConfirmation":
            self._confirm(payload["SubscribeURL"])
        return None, ""

    def _confirm(self, url: str) -> None:
        """Confirm an SNS subscription (its signature verified, its topic accepted) by fetching its URL."""
        try:
            self.fetch(ses.sns_url(url))
        except OSError as error:
            raise HookRefused(f"cannot confirm the SNS subscription: {error}", 503) from None
        log.warning("confirmed the SNS subscription to %s", url.split("?")[0])


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        raise HookRefused("the body is not JSON", 400) from None
