"""Reading the parts of a report message: the delivery-status and feedback-report fields, the quoted original,
the first text part, and the addresses they name; and text made safe to store or print.

Messages are parsed with the compat32 policy, which leaves headers as written: the default policy's header
objects cost two thirds of a `bounces` run.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message

from ..base.addresses import split_mailbox

_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def decoded(value: object) -> str:
    """A header as a person reads it: encoded words decoded (the messages are parsed with the compat32 policy,
    which leaves headers as written: the default policy's header objects cost two thirds of a run)."""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, ValueError, UnicodeError):
        return str(value)


def report_blocks(message: EmailMessage, content_type: str) -> list[dict[str, str]]:
    """The header-like blocks of a report part (message/delivery-status: the per-message block, then one per
    recipient; message/feedback-report: one), field names lower-cased."""
    for part in message.walk():
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):  # the email package parses delivery-status into header blocks
            text = "\n\n".join(str(block) for block in payload)
        else:
            text = part.get_payload(decode=True).decode("utf-8", "replace") if part.get_payload() else ""
        blocks: list[dict[str, str]] = []
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
            fields: dict[str, str] = {}
            for line in re.sub(r"\r?\n[ \t]+", " ", chunk).splitlines():
                name, colon, value = line.partition(":")
                if colon and name.strip():
                    fields.setdefault(name.strip().lower(), value.strip())
            if fields:
                blocks.append(fields)
        return blocks
    return []


def report_fields(message: EmailMessage, content_type: str) -> dict[str, str]:
    """All the fields of a report part in one mapping, the first of a name winning."""
    merged: dict[str, str] = {}
    for block in report_blocks(message, content_type):
        merged = {**block, **merged}
    return merged


def text_of(message: Message, limit: int = 8000) -> str:
    """The first text/plain part, decoded (an unknown charset read as UTF-8), up to `limit` characters."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = (part.get_payload(decode=True) or b"")[: limit * 2]
            try:
                return payload.decode(part.get_content_charset() or "utf-8", "replace")[:limit]
            except LookupError:
                return payload.decode("utf-8", "replace")[:limit]
    return ""


# where a plain-text bounce starts quoting the message (qmail, Yahoo: "--- Below this line is a copy of the
# message."; Exim: "------ This is a copy of the message, ..."; Sendmail: "----- Original message follows -----")
_COPY_FOLLOWS = re.compile(r"^[ \t]*-{2,}.*(copy of the message|original message)", re.I | re.M)


def bounce_words(message: Message) -> str:
    """What a non-standard bounce says, without the copy of our message it may quote (whose headers, such as
    Return-Path and From, are no diagnosis)."""
    text = text_of(message)
    found = _COPY_FOLLOWS.search(text)
    return text[: found.start()] if found else text


def quoted_original(message: EmailMessage) -> Message | None:
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
            return message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.compat32)
    return None


def address_in(field_value: str) -> str:
    """The address of `rfc822; a@b.org`, `<a@b.org>` or `Name <a@b.org>`, or ''."""
    value = field_value.split(";", 1)[-1].strip()
    match = re.search(r"<([^<>\s]+@[^<>\s]+)>", value)
    candidate = match[1] if match else value
    _, address, problem = split_mailbox(candidate)
    return "" if problem else address


def printable(text: str) -> str:
    """`text` without terminal escape sequences or control characters, runs of white space folded."""
    return " ".join(_CONTROL.sub(" ", text).split())
