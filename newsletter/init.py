"""`newsletter init`: a newsletter of one's own, from an empty folder, in one command.

It writes everything a new publication needs and nothing of anyone else's: `newsletter.toml` with every setting
and a line saying what it is for, `.env` (owner-only) with a fresh unsubscribe key and the SMTP settings to fill
in, a `.gitignore` that keeps secrets and subscriber data out of version control, and a first edition that builds
and passes the built-in checks as it is. It never overwrites: when any file it would write is already there, it
names it and writes nothing at all.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from .base.addresses import parse_mailbox
from .base.config import CONFIG_FILE, check_site_url
from .base.errors import ConfigError, NewsletterError
from .base.headers import check_header_value
from .base.writer import atomic_write
from .edition.load import EDITION_FILE, ISSUES_DIR, toml_string
from .edition.render import PACKAGE_TEMPLATES

FIRST_EDITION = "welcome"
THEME_FILES = ("email.html", "email.txt", "page.html")


@dataclass(frozen=True)
class Identity:
    """Who the new newsletter is: what `init` asks for, or takes from its options."""

    name: str
    sender: str
    postal_address: str
    site_url: str
    disclaimer: str


def default_identity(folder: Path, name: str | None = None) -> Identity:
    """What `--yes` fills in for an answer not given (`name`, when known, shapes the rest). The From address is
    a placeholder on purpose: `check` refuses it until it is the publication's own, and the postal address is
    left for the user to write."""
    words = folder.resolve().name.replace("-", " ").replace("_", " ").split()
    name = name or " ".join(w.capitalize() for w in words) or "My Newsletter"
    return Identity(
        name=name,
        sender=f"{name} <newsletter@example.com>",
        postal_address="",
        site_url="http://127.0.0.1:8080",
        disclaimer=f"You receive {name} because you subscribed to it. Its content is for general information only.",
    )


def check_identity(identity: Identity) -> Identity:
    """The answers as `load_publication` will read them, checked before anything is written; each error names
    the option it came from."""
    for key in ("name", "sender", "disclaimer"):
        if not getattr(identity, key).strip():
            raise ConfigError(f"--{'from' if key == 'sender' else key} must not be empty")
    try:
        for key in ("name", "postal_address", "disclaimer"):
            check_header_value(f"--{key.replace('_', '-')}", getattr(identity, key))
        parse_mailbox(identity.sender, "--from")
        check_site_url(identity.site_url, "--site-url")
    except NewsletterError as error:
        raise ConfigError(error.message) from None
    return identity


def init_newsletter(folder: Path, identity: Identity, theme: bool = False) -> list[Path]:
    """Write a new newsletter's files into `folder` (created when missing); returns what was written."""
    identity = check_identity(identity)
    files: dict[Path, str] = {
        folder / CONFIG_FILE: settings_file(identity),
        folder / ".env": environment_file(),
        folder / ".gitignore": GITIGNORE,
        folder / ISSUES_DIR / FIRST_EDITION / EDITION_FILE: FIRST_EDITION_TOML,
        folder / ISSUES_DIR / FIRST_EDITION / "welcome.md": welcome_article(identity),
    }
    if theme:
        files.update({folder / "templates" / name: (PACKAGE_TEMPLATES / name).read_text("utf-8")
                      for name in THEME_FILES})  # fmt: skip
    existing = [path for path in files if path.exists() or path.is_symlink()]
    if existing:
        raise ConfigError(
            "already exists; `init` never overwrites a file (move it away, or init another folder)", existing[0]
        )
    for path, text in files.items():
        atomic_write(path, text, private=path.name == ".env")
    return list(files)


def settings_file(identity: Identity) -> str:
    """newsletter.toml with every key: the answers set, the rest commented out with an example value."""
    domain = parse_mailbox(identity.sender, "--from").domain
    set_values = {
        "name": identity.name,
        "from": identity.sender,
        "postal_address": identity.postal_address,
        "site_url": identity.site_url,
        "disclaimer": identity.disclaimer,
    }
    lines = [
        "# Settings of this newsletter. Secrets and machine settings (SMTP_*, NEWSLETTER_UNSUBSCRIBE_SECRET, DKIM_*,",
        "# IMAP_*) live in .env, which `newsletter init` made readable by you only. Never commit .env.",
        "[publication]",
    ]
    for key, comment, default in SETTINGS:
        lines.append(f"# {comment}")
        if key in set_values:
            lines.append(f"{key} = {toml_string(set_values[key])}")
        else:
            lines.append(f"# {key} = {toml_string(default.replace('DOMAIN', domain))}")
    return "\n".join(lines) + "\n"


# (key, what it is for, the value shown when it is left commented out)
SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("name", "The newsletter's name: the masthead, the From name's usual twin, the List-Id's label.", ""),
    ("from", "The sender of every edition (NEWSLETTER_FROM in .env overrides it).", ""),
    ("reply_to", "Where replies go, when not to the From address.", "editor@DOMAIN"),
    ("postal_address", "Your postal address, shown in every footer (the law asks bulk senders for one).", ""),
    ("site_url", "Where `newsletter serve` answers: unsubscribe links, archive, web versions (https).", ""),
    (
        "unsubscribe_url",
        "Instead of site_url: an unsubscribe endpoint of your own; it must contain {token}.",
        "https://DOMAIN/unsubscribe/{token}",
    ),
    (
        "unsubscribe_mailto",
        "An address that unsubscribes whoever writes to it (read by `newsletter bounces`).",
        "unsubscribe@DOMAIN",
    ),
    (
        "bounce_address",
        "Where bounces go; each message's return path becomes this address plus a tag (VERP).",
        "bounces@DOMAIN",
    ),
    ("website_url", "Your own website, linked from the masthead.", "https://DOMAIN/"),
    ("archive_url", "The archive of past editions (default: site_url).", "https://DOMAIN/newsletter/"),
    ("list_id", "The List-Id (default: the From address's local part under its domain).", "newsletter.DOMAIN"),
    ("lang", "The language of your editions (an HTML lang code).", "en"),
    (
        "test_recipient",
        "Who `build` addresses its sample message to (default: the From address).",
        "Test Reader <test@DOMAIN>",
    ),
    ("greeting_fallback", "The greeting's name for a subscriber without one: 'Hi there,'.", "there"),
    ("brand_color", "The accent colour of links and the masthead (a CSS colour such as #1f5f8b).", "#1f5f8b"),
    ("disclaimer", "The disclaimer every edition carries at its foot; no edition is built without it.", ""),
    (
        "copyright",
        "The copyright line under the disclaimer (default: Copyright © YEAR NAME).",
        "Copyright © 2026 Your Name",
    ),
    (
        "suppression_file",
        "A file of addresses never to mail, besides the suppression store (one per line).",
        "unsubscribed.txt",
    ),
)

GITIGNORE = """\
# Secrets and subscriber data stay on this machine.
.env
.newsletter/
# What `build`, `export` and `smtp-capture` write.
build/
out/
exports/
captured/
"""

FIRST_EDITION_TOML = """\
subject = "Welcome to our newsletter"
preheader = "What to expect, and how often."
articles = ["welcome.md"]
"""


def welcome_article(identity: Identity) -> str:
    return f"""+++
title = {toml_string(f"Welcome to {identity.name}")}
+++

Thank you for reading the first edition of {identity.name}.

This is where your articles go. Write each one as a Markdown file in an
edition's folder under `issues/`, or bring in a blog post you already have
with `newsletter import post.html --into issues/NEXT`.

Build this edition with `newsletter build {FIRST_EDITION}`, look at it with
`newsletter preview {FIRST_EDITION}`, and send yourself a test with
`newsletter send-test {FIRST_EDITION} --to you@example.com` once your SMTP
server is set in `.env`.
"""


def environment_file() -> str:
    """.env with a fresh unsubscribe key; every other setting is there, commented out, to fill in."""
    return f"""\
# Secrets and machine settings of this newsletter. Readable by you only; never commit it.
# Real environment variables win over this file.

# The key that seals every unsubscribe link and return path (at least 16 bytes). To rotate it, put a new key
# first and keep the old ones after it, comma-separated: links in mail already sent keep working.
NEWSLETTER_UNSUBSCRIBE_SECRET={secrets.token_urlsafe(32)}

# The SMTP server for send-test and send (build and export need none).
# SMTP_HOST=smtp.example.com
# SMTP_PORT=587
# SMTP_SECURITY=starttls
# SMTP_USERNAME=newsletter@example.com
# SMTP_PASSWORD=
# SMTP_TIMEOUT=30
# SMTP_CA_FILE=

# DKIM signing: `newsletter dkim-keygen --selector news1 --out keys` makes a key and prints the DNS record.
# DKIM_PRIVATE_KEY_FILE=
# DKIM_SELECTOR=
# DKIM_DOMAIN=

# The mailbox `newsletter bounces --imap` reads (IMAPS, certificates always verified).
# IMAP_HOST=
# IMAP_PORT=993
# IMAP_USERNAME=
# IMAP_PASSWORD=
# IMAP_FOLDER=INBOX
# IMAP_TIMEOUT=30

# Bounces and complaints from an email service provider, posted to `newsletter serve` at /hooks/PROVIDER
# (README: "Bounces from an email service provider"). A provider left unset has no webhook.
# SES_TOPIC_ARNS=
# POSTMARK_WEBHOOK_USER=
# POSTMARK_WEBHOOK_PASSWORD=
# MAILGUN_WEBHOOK_SIGNING_KEY=
# SENDGRID_WEBHOOK_PUBLIC_KEY=
"""
