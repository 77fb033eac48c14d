"""Settings: publication-wide ones from newsletter.toml, machine ones and secrets from the environment / .env.

The real environment wins over `.env`, as python-dotenv's users expect; `.env` is read without touching
`os.environ`, so a secret from it never leaks into child processes or later tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path

from dotenv import dotenv_values

from .addresses import ascii_address, ascii_domain, parse_mailbox
from .errors import ConfigError, ContentError
from .headers import check_header_value
from .model import Publication

CONFIG_FILE = "newsletter.toml"
MIN_SECRET_BYTES = 16
SECURITY_MODES = ("starttls", "ssl", "none")
_PUBLICATION_KEYS = {f.name for f in dataclasses.fields(Publication)} - {"source", "unsubscribe_secret"}
NO_WORKSPACE = f"no {CONFIG_FILE} here or above: run `newsletter init` to start a newsletter"
_CSS_COLOR = re.compile(
    r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})|(?:rgb|hsl)a?\(\s*[0-9.%]+(?:\s*[,\s/]\s*[0-9.%]+){2,3}\s*\)"
)


def find_root(start: Path) -> Path:
    """The workspace holding `start`: the nearest folder at or above it with a newsletter.toml, as git finds
    `.git`, so every command works from any subfolder of a newsletter and never from someone else's settings."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ConfigError(NO_WORKSPACE)


def load_environment(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge `.env` in `root` under the real environment (or under `environ`, when given)."""
    env_file = root / ".env"
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    values.update(os.environ if environ is None else environ)
    return values


def load_publication(root: Path, env: Mapping[str, str] | None = None) -> Publication:
    """Read `[publication]` from newsletter.toml in `root`, with NEWSLETTER_FROM / NEWSLETTER_REPLY_TO and the
    unsubscribe secret from the environment; fill in what derives from the publication's own identity."""
    env = load_environment(root) if env is None else env
    path = root / CONFIG_FILE
    source = str(path)
    settings = _read_settings(path)
    for key, name in (("NEWSLETTER_FROM", "sender"), ("NEWSLETTER_REPLY_TO", "reply_to")):
        if env.get(key):
            parse_mailbox(env[key], key, "environment / .env")
            settings[name] = env[key]
    for key in ("name", "sender", "disclaimer"):
        if not settings.get(key, "").strip():
            shown = "from" if key == "sender" else key
            raise ConfigError(f"[publication] {shown} is required (who the newsletter is from)", source)
    settings["unsubscribe_secret"] = ",".join(secret_keys(env.get("NEWSLETTER_UNSUBSCRIBE_SECRET", "")))
    _check_urls(settings, source)
    publication = Publication(**settings, source=path)
    sender = parse_mailbox(publication.sender, "[publication] from", source)
    publication = dataclasses.replace(
        publication,
        list_id=publication.list_id or derived_list_id(sender),
        copyright=publication.copyright or f"Copyright © {dt.date.today().year} {publication.name}",
        test_recipient=publication.test_recipient or sender.addr_spec,
        consent_text=publication.consent_text
        or f"I agree to receive {publication.name} by email. I can "
        "unsubscribe at any time with the link in every email.",
    )
    _check_publication(publication, source)
    return dataclasses.replace(
        publication,
        unsubscribe_url=ascii_url(publication.unsubscribe_url),
        unsubscribe_mailto=ascii_address(publication.unsubscribe_mailto),
    )


def _read_settings(path: Path) -> dict[str, str]:
    """The `[publication]` table as strings, with `from` named `sender` as the model has it."""
    if not path.is_file():
        raise ConfigError(NO_WORKSPACE, path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path) from None
    settings: dict[str, str] = {}
    for key, value in data.get("publication", {}).items():
        name = "sender" if key == "from" else key
        if name not in _PUBLICATION_KEYS:
            raise ConfigError(f"unknown setting [publication] {key}", path)
        if name == "welcome" and isinstance(value, bool):
            value = "true" if value else ""
        if not isinstance(value, str):
            raise ConfigError(f"[publication] {key} must be a string", path)
        settings[name] = value.strip()
    return settings


def secret_keys(secret: str) -> list[str]:
    """NEWSLETTER_UNSUBSCRIBE_SECRET as its keys, current first: split on commas only (a passphrase may hold
    spaces), each at least MIN_SECRET_BYTES long, so no empty or guessable key can ever open a token."""
    if not secret:
        return []
    if not secret.strip():
        raise ConfigError("NEWSLETTER_UNSUBSCRIBE_SECRET is only white space: set a real key or leave it empty")
    keys = [key.strip() for key in secret.split(",")]
    for number, key in enumerate(keys, start=1):
        if len(key.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"NEWSLETTER_UNSUBSCRIBE_SECRET: key {number} of {len(keys)} is "
                f"{'empty' if not key else f'shorter than {MIN_SECRET_BYTES} bytes'}; each comma-separated key needs "
                f"at least {MIN_SECRET_BYTES} (`newsletter init` writes a random one)"
            )
    return keys


def derived_list_id(sender: Address) -> str:
    """A List-Id under the publication's own domain (RFC 2919): the From address's local part as a label of
    its domain, `letter@garden.example` -> `letter.garden.example`."""
    label = re.sub(r"[^a-z0-9-]+", "-", sender.username.lower()).strip("-") or "newsletter"
    return f"{label}.{sender.domain.lower()}"


def _check_urls(settings: dict[str, str], source: str) -> None:
    """Derive the serve URLs from `site_url`, and refuse a URL or colour that could run in a reader's page."""
    if settings.get("site_url"):
        if settings.get("unsubscribe_url"):
            raise ConfigError(
                "[publication] site_url and unsubscribe_url are both set: site_url makes the unsubscribe link "
                "point at `newsletter serve`; keep one of them",
                source,
            )
        site = check_site_url(settings["site_url"], source=source)
        settings["site_url"] = site
        settings["unsubscribe_url"] = f"{site}/unsubscribe/{{token}}"
        settings.setdefault("archive_url", f"{site}/")
    if not settings.get("unsubscribe_url"):
        raise ConfigError(
            "[publication] site_url is not set: every edition needs a working unsubscribe link, from "
            "`newsletter serve` at site_url (or an endpoint of your own as unsubscribe_url)",
            source,
        )
    for key in ("website_url", "archive_url"):
        url = settings.get(key, "")
        if url and urllib.parse.urlsplit(url).scheme.lower() not in ("https", "http", "mailto"):
            raise ConfigError(f"[publication] {key} must be an https://, http:// or mailto: URL", source)
    color = settings.get("brand_color", "")
    if color and not _CSS_COLOR.fullmatch(color):
        raise ConfigError(
            f"[publication] brand_color {color!r} is not a CSS colour (use #rrggbb, #rgb or rgb(r, g, b))", source
        )


def check_site_url(url: str, key: str = "[publication] site_url", source: str | None = None) -> str:
    """`site_url` without its trailing slash: https, or plain http on this machine only (for trying it out)."""
    parts = urllib.parse.urlsplit(url.strip())
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigError(
            f"{key} must be an https:// URL (RFC 8058 one-click needs https; plain http only for 127.0.0.1 or "
            "localhost)",
            source,
        )
    if parts.query or parts.fragment or not parts.hostname:
        raise ConfigError(f"{key} must be a plain base URL such as https://news.example.org", source)
    return ascii_url(url.strip()).rstrip("/")


def ascii_url(url: str) -> str:
    """The URL as a mail header can carry it: an internationalised host in IDNA form, anything else non-ASCII
    percent-encoded (RFC 3986). `{token}` is kept for the composer to fill in."""
    if url.isascii():
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = parts.netloc.replace(host, ascii_domain(host) or host) if host else parts.netloc
    safe = "/:@!$&'()*+,;=%{}?#~"
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, urllib.parse.quote(parts.path, safe=safe),
         urllib.parse.quote(parts.query, safe=safe), urllib.parse.quote(parts.fragment, safe=safe))
    )  # fmt: skip


def _check_publication(publication: Publication, source: str) -> None:
    """Fail early, naming the key, on settings that would only break at send time (the sender, name and
    disclaimer were checked as they were read)."""
    if publication.reply_to:
        parse_mailbox(publication.reply_to, "[publication] reply_to", source)
    if publication.bounce_address:
        bounce = parse_mailbox(publication.bounce_address, "[publication] bounce_address", source)
        if "+" in bounce.username or len(bounce.username) > 24:
            raise ConfigError("[publication] bounce_address: its local part must be short and without '+' (each "
                              "message's return path adds +TAG to it, within 64 characters)", source)  # fmt: skip
    if not publication.unsubscribe_url.startswith("https://") and not (
        publication.site_url and publication.unsubscribe_url.startswith(publication.site_url)
    ):
        raise ConfigError("[publication] unsubscribe_url must be an https:// URL", source)
    if "{token}" not in publication.unsubscribe_url:
        raise ConfigError(
            "[publication] unsubscribe_url must contain {token}: without it every recipient gets the same link, "
            "and nobody can be told apart when they unsubscribe",
            source,
        )
    for key in ("name", "list_id", "unsubscribe_url", "unsubscribe_mailto"):
        try:
            check_header_value(f"[publication] {key}", getattr(publication, key))
        except ContentError as error:
            raise ConfigError(error.message, source) from None


@dataclass(frozen=True)
class SMTPSettings:
    """Where and how to connect; the password is kept out of repr so it never reaches a log or traceback."""

    host: str
    port: int
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    ca_file: str = ""


def load_smtp_settings(env: Mapping[str, str]) -> SMTPSettings | None:
    """SMTP settings from the environment, or None when SMTP_HOST is unset (the file backend is then in use)."""
    host = env.get("SMTP_HOST", "").strip()
    if not host:
        return None
    security = env.get("SMTP_SECURITY", "starttls").strip().lower() or "starttls"
    if security not in SECURITY_MODES:
        raise ConfigError(f"SMTP_SECURITY: unknown mode {security!r} (use one of {', '.join(SECURITY_MODES)})")
    default_port = {"starttls": 587, "ssl": 465, "none": 25}[security]
    port = _port(env, "SMTP_PORT", default_port)
    timeout = _timeout(env, "SMTP_TIMEOUT")
    ca_file = env.get("SMTP_CA_FILE", "").strip()
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"SMTP_CA_FILE: no such file {ca_file}")
    username = env.get("SMTP_USERNAME", "").strip()
    password = env.get("SMTP_PASSWORD", "")
    if username and not password:
        raise ConfigError("SMTP_PASSWORD: must be set when SMTP_USERNAME is")
    return SMTPSettings(host, port, security, username, password, timeout, ca_file)


def _port(env: Mapping[str, str], key: str, default: int) -> int:
    port = _number(env, key, default, int)
    if not 0 < port < 65536:
        raise ConfigError(f"{key}: {port} is not a port number (1-65535)")
    return port


def _timeout(env: Mapping[str, str], key: str, default: float = 30.0) -> float:
    """Seconds to wait: a finite positive number (`nan`, `inf` and `1e400` parse as floats, and would mean
    "never time out" or fail deep inside the socket layer)."""
    timeout = _number(env, key, default, float)
    if not math.isfinite(timeout) or timeout <= 0 or timeout > 24 * 3600:
        raise ConfigError(f"{key}: must be a positive number of seconds (at most a day)")
    return timeout


def _number(env: Mapping[str, str], key: str, default, kind):
    """Read a numeric setting, naming the key (and never echoing other settings) when it is malformed."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{key}: {raw!r} is not a number") from None


def require_smtp_settings(env: Mapping[str, str]) -> SMTPSettings:
    """SMTP settings from the environment / .env, or a ConfigError saying that none are configured."""
    settings = load_smtp_settings(env)
    if settings is None:
        raise ConfigError(
            "no SMTP server configured: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD) in the "
            "environment or in the .env `newsletter init` wrote (its SMTP lines are there, commented out); `build` "
            "and `export` need no server"
        )
    return settings


@dataclass(frozen=True)
class IMAPSettings:
    """The mailbox `bounces --imap` reads: implicit TLS (IMAPS), certificates always verified."""

    host: str
    port: int = 993
    username: str = ""
    password: str = field(default="", repr=False)
    folder: str = "INBOX"
    ca_file: str = ""
    timeout: float = 30.0


def require_imap_settings(env: Mapping[str, str]) -> IMAPSettings:
    """IMAP_HOST, IMAP_PORT, IMAP_USERNAME, IMAP_PASSWORD, IMAP_FOLDER (and IMAP_CA_FILE for a private CA)."""
    host = env.get("IMAP_HOST", "").strip()
    if not host:
        raise ConfigError(
            "no IMAP server configured: set IMAP_HOST, IMAP_USERNAME and IMAP_PASSWORD in .env (its IMAP lines "
            "are there, commented out)"
        )
    port = _port(env, "IMAP_PORT", 993)
    ca_file = env.get("IMAP_CA_FILE", "").strip()
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"IMAP_CA_FILE: no such file {ca_file}")
    username, password = env.get("IMAP_USERNAME", "").strip(), env.get("IMAP_PASSWORD", "")
    if not username or not password:
        raise ConfigError("IMAP_USERNAME and IMAP_PASSWORD must be set to read bounces over IMAP")
    folder = env.get("IMAP_FOLDER", "").strip() or "INBOX"
    return IMAPSettings(host, port, username, password, folder, ca_file, _timeout(env, "IMAP_TIMEOUT"))
