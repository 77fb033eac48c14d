"""Compose: every message parses back without defects and matches, field by field and part by part, a message
built the slow, obvious way with EmailMessage.set_content; header injection is impossible."""

from __future__ import annotations

import datetime as dt
import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import LIST_ID, SAMPLE_EDITION, configure, parse_message, parts

from newsletter.audience.tokens import message_id_for, read_unsubscribe_token, unsubscribe_keys
from newsletter.base.errors import HeaderInjectionError
from newsletter.base.headers import check_header_value
from newsletter.base.model import Recipient
from newsletter.base.workspace import open_workspace
from newsletter.edition.compose import MessageFactory
from newsletter.edition.pipeline import render_checked

NOW = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)
RECIPIENTS = [
    Recipient("alice@example.org", "Alice Example"),
    Recipient("zoe@example.org", "Zoë Müller-Lüdenscheidt, Ph.D. 😀"),
    Recipient("o'brien+news@example.org", ""),
    Recipient("bob@example.org", 'Bob "The Builder" <script>&'),
]


@pytest.fixture
def factory(project: Path) -> MessageFactory:
    return MessageFactory(render_checked(SAMPLE_EDITION, open_workspace(project), ("city",)), now=NOW)


def reference_message(factory: MessageFactory, recipient: Recipient, with_name: bool = True) -> EmailMessage:
    """The naive build: one full EmailMessage per recipient, encoded by the email package itself."""
    text, html = factory.personalise(recipient)
    message = EmailMessage(policy=policy.SMTP)
    message["To"] = f"{recipient.name} <{recipient.email}>" if recipient.name and with_name else recipient.email
    message["Subject"] = factory.subject
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message


@pytest.mark.parametrize("recipient", RECIPIENTS, ids=lambda r: r.email)
def test_fast_message_equals_reference_build(factory: MessageFactory, recipient: Recipient) -> None:
    composed = factory.compose(recipient)
    message = parse_message(composed.data)
    reference = message_from_bytes(bytes(reference_message(factory, recipient)), policy=policy.default)
    assert parts(message) == parts(reference)
    assert message["To"].addresses[0].addr_spec == recipient.email
    assert message["To"].addresses[0].display_name == recipient.name
    assert message["Subject"] == reference["Subject"] == "Is Physical Therapy Worth It for Back Pain?"


@pytest.mark.parametrize(
    "recipient",
    [
        Recipient("ann@example.org", "Änn"),  # one encoded word
        Recipient("reader.with.a.rather.long.address@subdomain.example.org", "Zoë Müller-Lüdenscheidt, Ph.D."),
        Recipient("ann@example.org", 'Änn "Q" <x@y>, z'),  # specials stay inside the encoded word
        Recipient("jose@example.org", "José María de la Santísima Trinidad Fernández y García"),  # folded
        Recipient("long@example.org", "A" * 72),  # one word longer than a line: encoded words, one per line
        Recipient("long@example.org", "A" * 1000),  # would pass RFC 5322's 998-octet hard limit as one line
        Recipient("words@example.org", "word " * 60),  # folded at its spaces
        Recipient("mixed@example.org", "Ä" + "B" * 300),
    ],
    ids=["short", "long-address", "specials", "folded", "long-ascii", "thousand", "many-words", "mixed"],
)
def test_names_in_every_form_parse_back_within_the_line_limits(factory: MessageFactory, recipient) -> None:
    data = factory.compose(recipient).data
    headers = data.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in headers.replace(b"\r\n", b""), "a bare LF or CR in the header block"
    lines = headers.split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"To:"))
    end = next(i for i, line in enumerate(lines[start + 1 :], start + 1) if not line.startswith(b" "))
    assert all(len(line) <= 78 for line in lines[start:end]), lines[start:end]
    message = parse_message(data)
    assert message["To"].addresses[0].addr_spec == recipient.email
    # RFC 2047 readers join adjacent encoded words; Python's own header parser keeps the folding space between
    # them, so read the raw value as a mail reader does
    raw = b" ".join(line.strip() for line in lines[start:end]).decode("ascii")[len("To:") :]
    name = str(make_header(decode_header(raw.rsplit("<", 1)[0].strip())))
    assert " ".join(name.strip('"').split()) == " ".join(recipient.name.split())


def test_headers_field_by_field(factory: MessageFactory) -> None:
    recipient = RECIPIENTS[1]
    message = parse_message(factory.compose(recipient).data)
    assert message["From"].addresses[0].addr_spec == "newsletter@seattle-neuro.example"
    assert message["From"].addresses[0].display_name == "Seattle Neuro Blog"
    assert message["Date"].datetime == NOW
    assert message["MIME-Version"] == "1.0"
    keys = unsubscribe_keys(factory.rendered.publication.unsubscribe_secret)
    assert message["Message-ID"] == message_id_for(SAMPLE_EDITION, LIST_ID, recipient.email, "seattle-neuro.example",
                                                   keys[0])  # fmt: skip
    assert re.fullmatch(r"<[0-9a-f]{32}\.back-pain@seattle-neuro\.example>", message["Message-ID"])
    assert message["List-Id"] == f"Seattle Neuro Blog <{LIST_ID}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    token = re.fullmatch(r"https://news\.seattle-neuro\.example/unsubscribe/([A-Za-z0-9_-]+)", https)[1]
    assert recipient.email not in https and "zoe" not in https.lower(), "no plain address in the URL"
    keys = unsubscribe_keys(factory.rendered.publication.unsubscribe_secret)
    assert read_unsubscribe_token(keys, LIST_ID, token) == recipient.email
    assert mailto == f"mailto:unsubscribe@seattle-neuro.example?subject=unsubscribe%20{token}"
    text, html = parts(message)
    assert https in text and https in html
    assert "Hi Zoë Müller-Lüdenscheidt, Ph.D. 😀," in text
    assert "Bcc" not in message and "Cc" not in message


def test_message_ids_are_stable_per_edition_and_recipient(factory: MessageFactory, project: Path) -> None:
    again = MessageFactory(render_checked(SAMPLE_EDITION, open_workspace(project)), now=NOW + dt.timedelta(days=1))
    first = factory.compose(RECIPIENTS[0]).message_id
    assert again.compose(RECIPIENTS[0]).message_id == first
    assert again.compose(Recipient("ALICE@example.org", "A")).message_id == first
    assert factory.compose(RECIPIENTS[1]).message_id != first


def test_recipient_values_are_escaped_in_html_and_plain_in_text(factory: MessageFactory) -> None:
    text, html = parts(parse_message(factory.compose(RECIPIENTS[3]).data))
    assert 'Hi Bob "The Builder" <script>&,' in text
    assert "Hi Bob &quot;The Builder&quot; &lt;script&gt;&amp;," in html
    assert "<script>" not in html


def test_blank_name_gets_the_greeting_fallback(factory: MessageFactory) -> None:
    text, _ = parts(parse_message(factory.compose(RECIPIENTS[2]).data))
    assert "Hi there," in text


def test_quoted_printable_lines_stay_within_rfc_2045(factory: MessageFactory) -> None:
    data = factory.compose(RECIPIENTS[1]).data
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in data)


def test_no_line_starts_with_a_dot(factory: MessageFactory) -> None:
    """A leading dot is written =2E, so SMTP's dot-stuffing has nothing to copy; the parts still decode the same."""
    recipient = Recipient("dot@example.org", ".Dot ." + "." * 80)
    data = factory.compose(recipient).data
    assert b"\r\n." not in data
    reference = message_from_bytes(bytes(reference_message(factory, recipient, with_name=False)), policy=policy.default)
    assert parts(parse_message(data)) == parts(reference)
    assert "Hi .Dot ." + "." * 80 in parts(reference)[0]


CVE_TITLE = "Weekly =?UTF-8?Q?=0A?=Bcc: x@example.com"


def test_python_here_is_open_to_cve_2024_6923() -> None:
    """Documents why headers.py exists: on this Python the plain email package emits the extra header."""
    message = EmailMessage(policy=policy.default)
    message["Subject"] = CVE_TITLE
    if b"\nBcc:" not in bytes(message):
        pytest.skip("this Python has the CVE-2024-6923 fix")
    assert message_from_bytes(bytes(message), policy=policy.default)["Bcc"] == "x@example.com"


@pytest.mark.parametrize("where", ["subject", "title"])
def test_encoded_newline_in_subject_or_title_yields_no_bcc(project: Path, cli, where: str) -> None:
    edition = project / "issues" / SAMPLE_EDITION
    if where == "subject":
        toml = (edition / "issue.toml").read_text(encoding="utf-8")
        (edition / "issue.toml").write_text(re.sub(r"^subject = .*$", f'subject = "{CVE_TITLE}"', toml, flags=re.M))
    else:
        article = next(edition.glob("*.md"))
        text = article.read_text(encoding="utf-8")
        article.write_text(re.sub(r"^title = .*$", f'title = "{CVE_TITLE}"', text, count=1, flags=re.M))
    result = cli("build", SAMPLE_EDITION)
    assert result.code == 1
    assert "decodes to a line break" in result.err
    eml = project / "build" / SAMPLE_EDITION / "email.eml"
    assert not eml.exists() or parse_message(eml.read_bytes())["Bcc"] is None


@pytest.mark.parametrize(
    "value",
    ["a\r\nBcc: x@example.com", "a\nb", "a\rb", "=?UTF-8?Q?=0D=0A?=Bcc: x", "=?utf-8?b?Cg==?=Bcc: x", "tab\x0bx"],
)
def test_check_header_value_rejects_line_breaks(value: str) -> None:
    with pytest.raises(HeaderInjectionError):
        check_header_value("subject", value)


def test_check_header_value_allows_harmless_encoded_words() -> None:
    assert check_header_value("subject", "Price =?UTF-8?Q?=E2=82=AC5?= today") == "Price =?UTF-8?Q?=E2=82=AC5?= today"


def test_crafted_recipient_name_cannot_inject(factory: MessageFactory) -> None:
    with pytest.raises(HeaderInjectionError):
        factory.compose(Recipient("eve@example.org", "Eve =?UTF-8?Q?=0A?=Bcc: x@example.com"))
    with pytest.raises(HeaderInjectionError):
        factory.compose(Recipient("eve@example.org", "Eve\r\nBcc: x@example.com"))


def test_internationalised_domains_everywhere(project: Path, cli, monkeypatch) -> None:
    """From, the unsubscribe URL and a recipient with a non-ASCII domain: IDNA in headers (RFC 2047 forbids
    encoded words in an address), messages that parse back without defects, and the name kept."""
    monkeypatch.setenv("NEWSLETTER_FROM", "Zeitung <news@zeitung-bücher.de>")
    configure(project, site_url=None, unsubscribe_url="https://bücher.example/abmelden/{token}")
    (project / "list.csv").write_text("email,name\nann@bücher.de,Änn\n", encoding="utf-8")
    result = cli("export", SAMPLE_EDITION, "--recipients", "list.csv", "--out", "out")
    assert result.code == 0, result.err
    (eml,) = (project / "out").glob("*.eml")
    message = parse_message(eml.read_bytes())
    assert message["From"].addresses[0].addr_spec == "news@" + "zeitung-bücher.de".encode("idna").decode()
    assert message["From"].addresses[0].display_name == "Zeitung"
    assert message["To"].addresses[0].addr_spec == "ann@xn--bcher-kva.de"
    assert message["To"].addresses[0].display_name == "Änn"
    assert message["List-Unsubscribe"].startswith("<https://xn--bcher-kva.example/abmelden/")
    assert message["Message-ID"].endswith("@" + "zeitung-bücher.de".encode("idna").decode() + ">")
    assert eml.read_bytes().isascii()
