"""The mails a reader gets for joining: the confirmation of a sign-up (double opt-in) and the optional welcome.

Each has its own template, HTML and text (`confirm.*`, `welcome.*`, overridable in templates/ like the theme),
carries the publication's footer (disclaimer, copyright, postal address) and passes the built-in checks an
edition passes where they apply: both parts carry the footer, the HTML passes `verify.markup_problems` (a
language, no unsafe markup, absolute links), no text line is over 78 characters. A template that fails them
stops `serve` at start, not a reader's sign-up. Each mail has a Message-ID of its own and no List-Unsubscribe:
it is not list mail.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ..base.addresses import ascii_address, parse_mailbox
from ..base.dkim import DKIMSigner
from ..base.errors import CheckFailed
from ..base.headers import check_header_value
from ..base.model import Publication, Recipient
from ..base.workspace import Workspace
from ..edition.compose import ComposedMessage
from ..edition.render import template_environment
from ..edition.verify import footer_problems, html_facts, markup_problems, normalise, text_line_problems

SUBJECTS = {"confirm": "Confirm your subscription to {name}", "welcome": "Welcome to {name}"}


class Notices:
    """Composes confirmation and welcome mails for one publication (templates compiled once)."""

    def __init__(self, workspace: Workspace) -> None:
        self.publication = workspace.publication
        environment = template_environment(workspace.templates)
        self.templates = {kind: (environment.get_template(f"{kind}.html"), environment.get_template(f"{kind}.txt"))
                          for kind in SUBJECTS}  # fmt: skip
        self.signer = DKIMSigner(workspace.dkim) if workspace.dkim else None
        self.sender = parse_mailbox(self.publication.sender, "[publication] from").addr_spec

    def check(self, sample_link: str) -> None:
        """CheckFailed naming each problem of a template, rendered for a sample reader."""
        for kind in SUBJECTS:
            html, text = self._render(kind, Recipient("reader@example.org", "Reader"), sample_link)
            problems = notice_problems(html, text, self.publication)
            if problems:
                raise CheckFailed(problems, path=f"templates/{kind}.html, {kind}.txt")

    def compose(self, kind: str, recipient: Recipient, link: str, message_id: str = "") -> ComposedMessage:
        """The mail of `kind` to `recipient`; `link` is the confirmation (or archive) URL. A `message_id`
        already given (a retry) is kept."""
        publication = self.publication
        html, text = self._render(kind, recipient, link)
        message = EmailMessage()
        message_id = message_id or make_msgid(domain=self.sender.rpartition("@")[2])
        subject = SUBJECTS[kind].format(name=publication.name)
        date = format_datetime(datetime.fromtimestamp(time.time(), UTC))
        headers = {"From": publication.sender, "To": _to(recipient), "Subject": subject, "Date": date,
                   "Message-ID": message_id}  # fmt: skip
        if publication.reply_to:
            headers["Reply-To"] = publication.reply_to
        for name, value in headers.items():
            check_header_value(name, value)
            message[name] = value
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        if self.signer is not None:
            data = self.signer.sign(data)
        return ComposedMessage(recipient, message_id, data)

    def _render(self, kind: str, recipient: Recipient, link: str) -> tuple[str, str]:
        html, text = self.templates[kind]
        context = {"publication": self.publication, "recipient": recipient, "link": link,
                   "archive": link if kind == "welcome" else ""}  # fmt: skip
        return html.render(context), text.render(context)


def _to(recipient: Recipient) -> str:
    """The To header: the name encoded as the email package does it, the domain in its IDNA form (an encoded
    word is no domain), as an edition's To has it."""
    from email.headerregistry import Address

    email = ascii_address(recipient.email)
    return str(Address(recipient.name, addr_spec=email)) if recipient.name else email


def notice_problems(html: str, text: str, publication: Publication) -> list[str]:
    """The built-in checks that apply to a mail that is not an edition."""
    facts = html_facts(html)
    visible = normalise(" ".join(facts.visible_text))
    return footer_problems(visible, normalise(text), publication) + markup_problems(facts) + text_line_problems(text)
