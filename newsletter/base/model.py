"""The data that flows through the pipeline, from the files on disk to finished messages.

Stages pass these plain, immutable values to one another; none of them touches the outside world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Publication:
    """Publication-wide settings from newsletter.toml (and NEWSLETTER_FROM / NEWSLETTER_REPLY_TO).

    There are no defaults for who the publication is (name, sender, disclaimer): a newsletter that went out
    under another publication's identity would be worse than one that does not build. `newsletter init` writes
    them; `config.load_publication` fills in what derives from them (list id, copyright line, test recipient)."""

    name: str
    sender: str
    disclaimer: str
    reply_to: str = ""
    list_id: str = ""  # empty: derived from the publication's own domain by `config.load_publication`
    lang: str = "en"
    postal_address: str = ""
    website_url: str = ""
    site_url: str = ""  # where `newsletter serve` answers: unsubscribe, archive, web versions, feed
    archive_url: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    test_recipient: str = ""
    greeting_fallback: str = "there"
    brand_color: str = "#1f5f8b"
    copyright: str = ""
    suppression_file: str = ""
    bounce_address: str = ""  # where bounces go; each message's return path becomes bounces+TAG@domain (VERP)
    consent_text: str = ""  # what the sign-up form says a reader agrees to (default: made from the name)
    welcome: str = ""  # "true": a welcome mail after a reader confirms (templates welcome.html, welcome.txt)
    unsubscribe_secret: str = field(default="", repr=False)
    source: Path | None = None


@dataclass(frozen=True)
class Article:
    """One Markdown article of an edition, front matter already parsed."""

    path: Path
    title: str
    body_markdown: str
    author: str = ""
    date: dt.date | None = None
    summary: str = ""
    canonical_url: str = ""
    image: str = ""
    image_alt: str = ""


@dataclass(frozen=True)
class Edition:
    """One newsletter issue: a folder under issues/ with issue.toml and its articles."""

    name: str
    folder: Path
    subject: str
    preheader: str
    date: dt.date
    articles: tuple[Article, ...]


@dataclass(frozen=True)
class Recipient:
    """One subscriber: an address, a display name and any other CSV columns for the templates."""

    email: str
    name: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class RenderedEdition:
    """The edition after render and inline: both parts, still holding recipient placeholders."""

    edition: Edition
    publication: Publication
    html: str
    text: str
    recipient_fields: tuple[str, ...]
    placeholder_key: str = ""  # see render.placeholder_key
