"""Stage 5, compose: a rendered edition + one recipient -> the exact bytes of one email message.

The edition-wide work (headers that never change, and quoted-printable encoding of both parts) is done once in
`MessageFactory.__init__`. Each recipient then costs their own three header lines (To, Message-ID,
List-Unsubscribe, built from fields, never from templated text) and a join of pre-encoded body pieces around
their encoded field values. Soft line breaks (`=` CRLF) separate every piece, so the decoded body
is exactly the rendered text with the values filled in: a twentieth of a naive per-recipient build.
Message-ID and List-Unsubscribe are ASCII values this module generates itself, written as header lines directly;
To is built from the recipient's fields by `email.utils.formataddr`, or by the email package's header folding
for names it cannot simply quote. tests/test_compose.py checks every form against a full EmailMessage build.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import uuid
from dataclasses import dataclass
from email import policy
from email.charset import Charset
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr

from ..audience.tokens import message_id_for, message_label, unsubscribe_keys, unsubscribe_token
from ..base.addresses import ascii_address, parse_mailbox
from ..base.dkim import DKIMKey, DKIMSigner
from ..base.headers import check_header_value
from ..base.model import Recipient, RenderedEdition
from .placeholders import split_placeholders

EOL = "\r\n"
# printable ASCII but "=", not starting with a dot nor starting or ending with a space
_PLAIN_QP = re.compile(r"[!-\-/-<>-~]([ !-<>-~]*[!-<>-~])?")
QP_LINE = 75  # one short of RFC 2045's 76, leaving room for the soft break that joins pieces
MAX_ENCODED_WORD = 75  # RFC 2047 section 2
MAX_LINE = 78  # RFC 5322 section 2.1.1: a header line should be no longer
_UTF8 = Charset("utf-8")
_UNFOLDABLE = re.compile(r"\S{60,}")  # a run no line break can go inside


@dataclass(frozen=True)
class ComposedMessage:
    """One finished message: the recipient, its stable Message-ID and the bytes to store or send."""

    recipient: Recipient
    message_id: str
    data: bytes
    dot_safe: bool = False  # no line of `data` starts with a dot, so SMTP need not dot-stuff it (compose's own)
    envelope_from: str = ""  # the SMTP sender (MAIL FROM) when it is not the From address: a VERP return path


def first_name(recipient: Recipient) -> str:
    """`recipient.first_name`: the list's own `first_name` column where it has one, else the name's first word."""
    given = recipient.fields.get("first_name", "").strip()
    return given or next(iter(recipient.name.split()), "")


class _Body:
    """One MIME part's body as pieces: literal text (quoted-printable encoded once) and field slots."""

    def __init__(self, text: str, fields: tuple[str, ...], key: str, escape: bool) -> None:
        self.escape = escape
        self.pieces = split_placeholders(text, fields, key)
        self.encoded = [_qp(p) if isinstance(p, str) else p for p in self.pieces]

    def _value(self, value: str) -> str:
        return html.escape(value) if self.escape else value

    def fill(self, values: tuple[str, ...]) -> str:
        """The part as the recipient reads it."""
        return "".join(self._value(values[p]) if isinstance(p, int) else p for p in self.pieces)

    def encode(self, values: tuple[str, ...]) -> str:
        """The part as it travels: quoted-printable, pieces joined by soft line breaks."""
        return ("=" + EOL).join(_qp(self._value(values[p])) if isinstance(p, int) else p for p in self.encoded)


def _header_block(message: EmailMessage) -> bytes:
    """The message's headers folded and encoded by its policy, without a body or the blank line after them."""
    return b"".join(message.policy.fold_binary(name, value) for name, value in message.items())


def _qp(text: str) -> str:
    """Quoted-printable of the UTF-8 bytes (body_encode works per character, so pass bytes as latin-1).

    A dot that would start a line is written `=2E`, so no line of a message starts with a dot and the message
    needs no dot-stuffing on its way through SMTP (RFC 5321 4.5.2). Lines are wrapped 2 short to leave room.
    A short plain value (most names and addresses) is its own encoding: the common case costs no encoder call."""
    if len(text) <= QP_LINE - 2 and _PLAIN_QP.fullmatch(text):
        return text
    latin1 = text.replace("\r\n", "\n").encode("utf-8").decode("latin-1")
    encoded = body_encode(latin1, maxlinelen=QP_LINE - 2, eol=EOL).replace(EOL + ".", EOL + "=2E")
    return "=2E" + encoded[1:] if encoded.startswith(".") else encoded


class MessageFactory:
    """Turns one rendered edition into per-recipient messages; build it once per edition and run."""

    def __init__(
        self,
        rendered: RenderedEdition,
        subject_prefix: str = "",
        now: dt.datetime | None = None,
        unique_ids: bool = False,
        dkim: DKIMKey | None = None,
    ) -> None:
        """`unique_ids` gives every message a Message-ID of its own (test sends): a client that de-duplicates by
        Message-ID must not hide the real edition from the person who tested it. `dkim` signs every message."""
        publication = rendered.publication
        self.rendered = rendered
        self.unique_ids = unique_ids
        self._keys = unsubscribe_keys(publication.unsubscribe_secret)
        self._signer = DKIMSigner(dkim) if dkim else None
        self.sender = parse_mailbox(publication.sender, "sender (NEWSLETTER_FROM or [publication] from)")
        self.subject = check_header_value(
            "subject", subject_prefix + rendered.edition.subject, rendered.edition.folder / "issue.toml"
        )
        for article in rendered.edition.articles:
            check_header_value("title", article.title, article.path)
        check_header_value("sender", publication.sender, publication.source)
        self._fields = rendered.recipient_fields
        self._boundary = "==" + hashlib.sha256(rendered.html.encode()).hexdigest()[:24] + "=="
        self._common_headers = self._edition_headers(now or dt.datetime.now(dt.UTC))
        self._text = _Body(rendered.text, self._fields, rendered.placeholder_key, escape=False)
        self._html = _Body(rendered.html, self._fields, rendered.placeholder_key, escape=True)
        self._unsubscribe_index = self._fields.index("unsubscribe_url")
        mailto = publication.unsubscribe_mailto
        # the mailto: half carries the same token in its subject, so `bounces` can tell who wrote, unforgeably
        self._unsubscribe_mailto = f",{EOL} <mailto:{mailto}?subject=unsubscribe%20{{token}}>" if mailto else ""
        self._part_head = (
            'Content-Type: text/{}; charset="utf-8"' + EOL + "Content-Transfer-Encoding: quoted-printable" + EOL * 2
        )

    def _edition_headers(self, now: dt.datetime) -> bytes:
        """Headers shared by every recipient, serialised once by the `email` package."""
        publication = self.rendered.publication
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = self.sender
        if publication.reply_to:
            message["Reply-To"] = parse_mailbox(
                publication.reply_to, "reply-to (NEWSLETTER_REPLY_TO or [publication] reply_to)"
            )
        message["Subject"] = self.subject
        message["Date"] = format_datetime(now)
        message["List-Id"] = f"{publication.name} <{publication.list_id}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message["MIME-Version"] = "1.0"
        message["Content-Type"] = f'multipart/alternative; boundary="{self._boundary}"'
        return _header_block(message)

    def values_for(self, recipient: Recipient, token: str | None = None) -> tuple[str, ...]:
        """The recipient's field values in placeholder order."""
        publication = self.rendered.publication
        token = token or unsubscribe_token(self._keys, publication.list_id, recipient.email)
        known = {
            "email": recipient.email,
            "name": recipient.name or publication.greeting_fallback,
            "first_name": first_name(recipient) or publication.greeting_fallback,
            "unsubscribe_url": publication.unsubscribe_url.replace("{token}", token),
        }
        return tuple(known[f] if f in known else recipient.fields.get(f, "") for f in self._fields)

    def message_id(self, recipient: Recipient) -> str:
        if self.unique_ids:
            return f"<{uuid.uuid4().hex}.test.{message_label(self.rendered.edition.name)}@{self.sender.domain}>"
        return message_id_for(
            self.rendered.edition.name,
            self.rendered.publication.list_id,
            recipient.email,
            self.sender.domain,
            self._keys[0],
        )

    def fingerprint(self) -> str:
        """A digest of everything a recipient sees but the date: both parts, subject, sender, list headers and the
        unsubscribe link (its URL and the secret that signs it), all through a probe recipient's message.
        A resumed send compares it, so one edition's recipients never get two different messages."""
        probe = Recipient("probe@fingerprint.invalid", "Probe", {f: f"[{f}]" for f in self._fields})
        data = re.sub(rb"\r\nDate: [^\r\n]*", b"", self._unsigned(probe)[1], count=1)
        return hashlib.sha256(data).hexdigest()

    def personalise(self, recipient: Recipient) -> tuple[str, str]:
        """The (text, html) parts for one recipient, decoded: what `build` writes beside the .eml."""
        values = self.values_for(recipient)
        return self._text.fill(values), self._html.fill(values)

    def compose(self, recipient: Recipient) -> ComposedMessage:
        """Return the message for one recipient, ready to write to disk or hand to SMTP as is (DKIM-signed when
        a key is configured)."""
        message_id, data = self._unsigned(recipient)
        if self._signer is not None:
            data = self._signer.sign(data)
        return ComposedMessage(recipient, message_id, data, dot_safe=True)

    def _unsigned(self, recipient: Recipient) -> tuple[str, bytes]:
        check_header_value("recipient name", recipient.name, line=recipient.line)
        token = unsubscribe_token(self._keys, self.rendered.publication.list_id, recipient.email)
        values = self.values_for(recipient, token)
        message_id = self.message_id(recipient)
        unsubscribe_url = values[self._unsubscribe_index]
        mailto = self._unsubscribe_mailto.replace("{token}", token)
        own = EOL.join(
            [
                f"To: {self._to(recipient)}",
                f"Message-ID: {message_id}",
                f"List-Unsubscribe: <{unsubscribe_url}>{mailto}",
                "",
            ]
        )
        body = EOL.join(
            [
                f"--{self._boundary}",
                self._part_head.format("plain") + self._text.encode(values),
                f"--{self._boundary}",
                self._part_head.format("html") + self._html.encode(values),
                f"--{self._boundary}--",
                "",
            ]
        )
        return message_id, own.encode("ascii") + self._common_headers + EOL.encode() + body.encode("ascii")

    def _to(self, recipient: Recipient) -> str:
        """The To value from the recipient's fields, every line of it within 78 characters and CRLF-folded.

        Plain ASCII names (most of them) are quoted by formataddr. A non-ASCII name that fits one RFC 2047
        encoded word (75 characters: about 40 bytes of UTF-8) becomes that word, far cheaper than the email
        package's header machinery. A longer name of short words is folded at its spaces by the email
        package; one that cannot be folded there (a word too long for a line, or non-ASCII) is written as a
        run of encoded words, one per line, which mail readers join again. An internationalised domain is
        written in its IDNA form: RFC 2047 forbids encoded words in an address."""
        email = ascii_address(recipient.email)
        name = recipient.name
        if name.isascii() and len(name) <= 60:
            return formataddr((name, email))
        if name.isascii() and not _UNFOLDABLE.search(name):
            local, _, domain = email.rpartition("@")
            message = EmailMessage(policy=policy.SMTP)
            message["To"] = Address(display_name=name, username=local, domain=domain)
            return _header_block(message).decode("ascii")[len("To:") : -len(EOL)].lstrip(" ")
        word = _UTF8.header_encode(name)  # what formataddr(..., charset="utf-8") writes
        if len(word) <= MAX_ENCODED_WORD:
            fits = len("To: ") + len(word) + len(email) + 3 <= MAX_LINE
            return f"{word}{' ' if fits else EOL + ' '}<{email}>"
        words = Header(name, _UTF8, maxlinelen=MAX_LINE - 2, header_name="To").encode(linesep=EOL)
        return f"{words}{EOL} <{email}>"
