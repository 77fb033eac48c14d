"""The data that flows through the pipeline, from the files on disk to finished messages.

Stages pass these plain, immutable values to one another; none of them touches the outside world.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DISCLAIMER = (
    "All information provided on this website is for information purposes only. Please see a healthcare "
    "professional for medical advice. If you are seeking this information in an emergency situation, please call "
    "911 and seek emergency help."
)
DEFAULT_COPYRIGHT = "All materials copyright © 2025 VoxMD.com, All Rights Reserved."


@dataclass(frozen=True)
class Publication:
    """Publication-wide settings from newsletter.toml (and NEWSLETTER_FROM / NEWSLETTER_REPLY_TO)."""

    name: str = "Seattle Neuro Blog"
    sender: str = "Seattle Neuro Blog <newsletter@example.org>"
    reply_to: str = ""
    list_id: str = "news.example.org"
    lang: str = "en"
    postal_address: str = "Seattle Neuro Blog, 123 Example Street, Seattle, WA 98101, USA"
    website_url: str = "https://example.org/"
    site_url: str = ""  # where `newsletter serve` answers: unsubscribe, archive, web versions, feed
    archive_url: str = ""
    unsubscribe_url: str = "https://example.org/unsubscribe/{token}"
    unsubscribe_mailto: str = "unsubscribe@example.org"
    test_recipient: str = "Test Reader <test@example.org>"
    greeting_fallback: str = "there"
    brand_color: str = "#1f5f8b"
    disclaimer: str = DEFAULT_DISCLAIMER
    copyright: str = DEFAULT_COPYRIGHT
    suppression_file: str = ""
    bounce_address: str = ""  # where bounces go; each message's return path becomes bounces+TAG@domain (VERP)
    unsubscribe_secret: str = field(default="", repr=False)
    dkim: object = field(default=None, repr=False)  # a dkim.DKIMKey from DKIM_* in the environment, or None
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
