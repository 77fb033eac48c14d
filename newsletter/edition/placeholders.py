"""Recipient placeholders: what the templates render where a recipient's field goes, and how compose finds them.

Markdown, Jinja and html2text run once per edition; each recipient's own values (name, address, unsubscribe
link, other CSV columns) are filled in per message. So the render stage writes an opaque token for each field,
one that no later stage changes (autoescape, premailer, html2text, quoted-printable) and that no article text can
spell, and compose splits the rendered parts at them. Every stage that meets a token asks this module.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import fields

import jinja2

from ..base.errors import ContentError
from ..base.model import Article, Edition

PREFIX, SUFFIX = "XNLF", "FLNX"


def is_placeholder(text: str) -> bool:
    """Whether `text` starts with a recipient placeholder (a link that becomes a URL when composed)."""
    return text.startswith(PREFIX)


def placeholder_key(edition: Edition) -> str:
    """The part of every placeholder token that article text cannot contain: derived from everything the
    edition's files say, so a text that spells a token changes the key it would have to spell (and the key
    stays the same from one run to the next, which a resumed send relies on)."""
    texts = [edition.subject, edition.preheader]
    for article in edition.articles:
        texts += [value for value in (getattr(article, f.name) for f in fields(Article)) if isinstance(value, str)]
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).digest()
    return "".join(chr(ord("a") + byte % 26) for byte in digest[:12])


def placeholder(index: int, key: str) -> str:
    """The token standing for recipient field number `index`: letters and digits only, so that no stage
    (autoescape, premailer, html2text, quoted-printable) changes it."""
    return f"{PREFIX}{key}{index:03d}{SUFFIX}"


def split_placeholders(text: str, fields: tuple[str, ...], key: str) -> list[str | int]:
    """Split rendered text into literal strings and field indexes, for fast per-recipient filling."""
    parts: list[str | int] = []
    position = 0
    for match in re.finditer(f"{PREFIX}{key}(\\d{{3}}){SUFFIX}", text):
        parts.append(text[position : match.start()])
        index = int(match[1])
        if index >= len(fields):
            raise ContentError(f"unknown recipient placeholder {match[0]}")
        parts.append(index)
        position = match.end()
    parts.append(text[position:])
    return parts


class RecipientPlaceholders:
    """What templates see as `recipient`: each known field renders as its placeholder token.

    An unknown field is a template error naming the fields there are, so a typo such as `recipient.nmae` fails
    the build instead of sending a blank.
    """

    def __init__(self, fields: tuple[str, ...], key: str) -> None:
        self._tokens = {name: placeholder(i, key) for i, name in enumerate(fields)}

    def __getattr__(self, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> str:
        try:
            return self._tokens[name]
        except KeyError:
            known = ", ".join(sorted(self._tokens))
            raise jinja2.UndefinedError(
                f"recipient has no field {name!r} (fields: {known}; other fields come from recipients CSV columns)"
            ) from None
