"""Readers join the list: `GET /subscribe` (the hosted form), `POST /subscribe` (from that form, or from the one
`newsletter form-snippet` prints for the publisher's own site), and `/confirm/TOKEN` (double opt-in).

What anyone can learn or do through it:
- The answer to a sign-up is the same page, byte for byte, whether the address is new, pending, confirmed or
  suppressed: nobody learns who is subscribed.
- No mail-bombing through the form: one confirmation mail per address per 10 minutes and 3 a day, none to a
  bounced or complaining address, none when the hidden honeypot field is filled (a bot), and at most
  IP_SIGNUPS sign-ups a minute from one IP address (the rest get a 429).
- One click in the email confirms a person, and no link scanner confirms anyone. Scanners (corporate mail
  filters, Outlook's Safe Links) fetch every link of a new mail within seconds of its arrival, and sometimes
  again later; people open mail later than that. So a GET within the first CONFIRM_DELAY seconds after the
  mail was handed to the relay, and any HEAD, shows a page with one button (POST) and changes nothing; a GET
  after that confirms at once, with an undo (unsubscribe) button. A scanner that fetches the link after the
  delay does confirm; one that only POSTs never could anyway. POST always confirms; a second confirmation
  changes nothing. The link works for 7 days after the sign-up.
- `next` leads back (a link, not a redirect) only to the origins of site_url or website_url.

The subscriber store is touched only on the event loop's thread: sign-ups arriving together share one
transaction (group commit), and the outbox task hands the mails to the relay between them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
import urllib.parse

from starlette.requests import Request
from starlette.responses import Response

from ..audience.outbox import Outbox
from ..audience.subscribers import Consent, SignUp, SubscriberStore, store_path
from ..audience.tokens import read_confirm_token, unsubscribe_token
from ..base.addresses import mailbox_key, split_mailbox
from ..delivery.groupcommit import GroupCommit
from .http import UNSUBSCRIBE_FORM, masked, origin_of, patiently, read_body

log = logging.getLogger("newsletter.serve")
CONFIRM_DELAY = 120.0  # seconds after the mail was handed over in which a GET only shows a button
IP_SIGNUPS = 5  # sign-ups a minute from one IP address
IP_TABLE = 100_000  # client addresses remembered at most (the oldest go first)
TRAP = "website"  # the honeypot field: hidden from people, filled by bots
SIGNUP_INPUTS = (
    {"name": "email", "label": "Email address", "type": "email", "autocomplete": "email", "required": True},
    {"name": "name", "label": "Name (optional)", "type": "text", "autocomplete": "name", "required": False},
)


class SignUps:
    """The sign-up routes of one `serve` (`site` is its `serve.Site`)."""

    def __init__(self, site) -> None:
        self.site, self.publication, self.keys = site, site.publication, site.keys
        settings = site.workspace.settings
        self.delay = float(settings.get("NEWSLETTER_CONFIRM_DELAY", "") or CONFIRM_DELAY)
        self.store = SubscriberStore(store_path(site.workspace.root), wait=0)
        self.outbox = Outbox(self.store)
        self.writer = GroupCommit(self._write)
        self.recent: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self.wake = asyncio.Event()
        self.answers: dict[str, str] = {}
        if 'name="email"' not in site.pages.page("", form=self.form(), signup=False):
            log.warning("templates/page.html shows no sign-up fields (a copy of the theme from before they came): "
                        "copy page.html again from `newsletter init --theme` run in an empty folder")  # fmt: skip

    def close(self) -> None:
        self.store.close()

    # --- the form ---------------------------------------------------------------------------------------------

    def form(self, back: str = "") -> dict:
        fields = (("next", back),) if back else ()
        return {"action": "", "button": "Subscribe", "fields": fields, "inputs": SIGNUP_INPUTS, "trap": TRAP,
                "note": self.publication.consent_text}  # fmt: skip

    async def subscribe(self, request: Request, _: str) -> Response:
        pages = self.site.pages
        if request.method != "POST":
            back = self._back(request.query_params.get("next", ""))
            return self.site.html(pages.page(f"Subscribe to {self.publication.name}",
                                             form=self.form(back), signup=False))  # fmt: skip
        body = await read_body(request)
        if body is None:
            return self.site.refusal(413, "Request too large", "The request was larger than a sign-up needs.")
        fields = form_fields(body)
        value = lambda name: " ".join(fields.get(name, "").split())[:200]  # noqa: E731
        _, email, problem = split_mailbox(value("email"))
        if problem:
            return self.site.refusal(400, "That is not an email address", "Go back and check the address.")
        if not self._allowed(request):
            response = self.site.refusal(429, "Too many sign-ups", "Please try again in a minute.")
            response.headers["retry-after"] = "60"
            return response
        if not value(TRAP):  # a filled honeypot: a bot, answered like anyone and ignored
            await self._sign_up(request, email, value("name"))
        return self._check_your_inbox(self._back(value("next")))

    def _check_your_inbox(self, back: str) -> Response:
        """The one answer to every sign-up (rendered once per `back`: the same bytes for everyone anyway)."""
        if back not in self.answers:
            if len(self.answers) > 100:
                self.answers.clear()
            self.answers[back] = self._render_check_your_inbox(back)
        return self.site.html(self.answers[back])

    def _render_check_your_inbox(self, back: str) -> str:
        return self.site.pages.page("Check your inbox", [
            f"If that address can get {self.publication.name}, an email with a confirmation link is on its way. "
            "Open it to finish subscribing; nothing is sent until you do.",
            "No email after a few minutes? Look in your spam folder."], back=back, signup=False)  # fmt: skip

    async def _sign_up(self, request: Request, email: str, name: str) -> None:
        consent = Consent("form", _page(request), self.publication.consent_text, _client(request), _agent(request))
        if await patiently(self.writer.submit, SignUp(email, name, consent, at=time.time())):
            self.wake.set()
        log.info("sign-up %s", masked(email))

    def _write(self, requests: list[SignUp]) -> list[bool]:
        """A group of sign-ups in one transaction, each first asked of the suppression store (one query): no
        mail to a suppressed address, but one who unsubscribed may come back by confirming again."""
        stopped = self.site.store.reasons_for([mailbox_key(r.address) for r in requests])
        checked = []
        for sign_up in requests:
            reason = stopped.get(mailbox_key(sign_up.address))
            rejoining = reason == "unsubscribe"
            checked.append(dataclasses.replace(sign_up, may_mail=reason is None or rejoining, rejoining=rejoining))
        return self.store.sign_up(checked)

    def _allowed(self, request: Request) -> bool:
        """At most IP_SIGNUPS sign-ups a minute from one address (kept in memory: a restart forgets). The table
        is kept in order of last use, so the addresses quiet for a minute are dropped from its front, a few at a
        time: a flood from many addresses costs each request O(1), never a pass over the table."""
        now, client = time.monotonic(), _client(request)
        times = self.recent.pop(client, None) or collections.deque()
        self.recent[client] = times  # to the end: the most recently seen
        while times and now - times[0] > 60:
            times.popleft()
        allowed = len(times) < IP_SIGNUPS
        if allowed:
            times.append(now)
        while self.recent:
            oldest = next(iter(self.recent.values()))
            if (oldest and now - oldest[-1] <= 60) and len(self.recent) <= IP_TABLE:
                break
            self.recent.popitem(last=False)
        return allowed

    def _back(self, url: str) -> str:
        """`next`, when it leads to the publisher's own site; else nothing."""
        ours = {origin_of(u) for u in (self.publication.site_url, self.publication.website_url) if u}
        return url if url.startswith(("https://", "http://")) and origin_of(url) in ours else ""

    # --- confirming --------------------------------------------------------------------------------------------

    async def confirm(self, request: Request, token: str) -> Response:
        found = read_confirm_token(self.keys, self.publication.list_id, token)
        if found is None:
            return self.site.refusal(400, "This link has expired or is not valid", "Confirmation links work for seven "
                                     "days. Sign up again to get a new one.")  # fmt: skip
        email = found[0]
        if request.method == "POST":
            if await read_body(request) is None:
                return self.site.refusal(413, "Request too large", "The request was larger than this needs.")
        elif request.method == "HEAD" or self._scanner_window(email):
            return self._confirm_button(email)
        return await self._confirmed(request, email)

    def _scanner_window(self, email: str) -> bool:
        handed = self.outbox.handed_at(mailbox_key(email))
        return handed is None or time.time() - handed < self.delay

    def _confirm_button(self, email: str) -> Response:
        return self.site.html(self.site.pages.page(f"Subscribe to {self.publication.name}?", [
            f"Confirm that {masked(email)} wants {self.publication.name} by email."],
            form={"action": "", "button": "Yes, subscribe me", "fields": ()}, signup=False))  # fmt: skip

    async def _confirmed(self, request: Request, email: str) -> Response:
        subscriber = self.store.get(email)
        if subscriber is None:
            return self.site.refusal(400, "This link is no longer valid", "Sign up again to get a new one.")
        changed = await patiently(self.store.confirm, email, Consent(ip=_client(request), agent=_agent(request)))
        if changed:  # the reader coming back lifts an earlier unsubscribe; a welcome follows, when asked for
            await patiently(asyncio.to_thread, self.site.store.remove, email, ("unsubscribe",))
            if self.publication.welcome == "true":
                await patiently(self.outbox.queue, mailbox_key(email), "welcome", time.time())
                self.wake.set()
            log.info("confirmed %s", masked(email))
        token = unsubscribe_token(self.keys, self.publication.list_id, email)
        undo = {"action": f"../unsubscribe/{token}", "button": "Undo: unsubscribe me", "fields": UNSUBSCRIBE_FORM}
        said = "You are subscribed" if changed else "You are already subscribed"
        return self.site.html(self.site.pages.page(said, [
            f"{masked(email)} will get {self.publication.name}, starting with the next edition.",
            "Did not mean to? Undo it here, or with the unsubscribe link in any email."], form=undo))  # fmt: skip


FORM_FIELDS = frozenset({"email", "name", TRAP, "next"})


def form_fields(body: bytes) -> dict[str, str]:
    """The sign-up form's fields of an urlencoded body, the first of each name; the others are not decoded
    (urllib's parse_qs decodes every pair and was a fifth of a sign-up's time)."""
    fields: dict[str, str] = {}
    for pair in body.split(b"&"):
        name, _, value = pair.partition(b"=")
        key = name.decode("latin-1")
        if key in FORM_FIELDS and key not in fields:
            fields[key] = urllib.parse.unquote_plus(value.decode("utf-8", "replace"), errors="replace")
    return fields


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:300]


def _page(request: Request) -> str:
    """The page a sign-up came from (its Referer, when the browser sends one), for the consent record."""
    return request.headers.get("referer", "")[:300] or str(request.url)[:300]


def form_snippet(publication) -> str:
    """The sign-up form as HTML to paste into the publisher's own site: it posts to `serve`, and the answer
    page links back to the page it came from (when that is on website_url's site)."""
    from markupsafe import escape

    from ..base.errors import ConfigError

    if not publication.site_url:
        raise ConfigError("[publication] site_url is not set: the form posts to `newsletter serve` there",
                          publication.source)  # fmt: skip
    inputs = "\n".join(
        f'  <p><label for="nl-{i["name"]}">{i["label"]}</label><br>\n'
        f'  <input id="nl-{i["name"]}" name="{i["name"]}" type="{i["type"]}" autocomplete="{i["autocomplete"]}"'
        f'{" required" if i["required"] else ""}></p>' for i in SIGNUP_INPUTS)  # fmt: skip
    back = (
        f'\n  <input type="hidden" name="next" value="{escape(publication.website_url)}">'
        if publication.website_url
        else ""
    )
    return (f'<form method="post" action="{escape(publication.site_url)}/subscribe" accept-charset="utf-8">\n'
            f"{inputs}\n"
            '  <p style="position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden" aria-hidden="true">'
            f'<label for="nl-{TRAP}">Leave this empty</label><input id="nl-{TRAP}" name="{TRAP}" type="text" '
            'tabindex="-1" autocomplete="off"></p>\n'
            f"  <p><small>{escape(publication.consent_text)}</small></p>{back}\n"
            "  <p><button type=\"submit\">Subscribe</button></p>\n</form>\n")  # fmt: skip
