"""Strict e-mail address checks, written out because the standard parsers are too lenient.

`email.utils.parseaddr` / `getaddresses` accept `alice@example.org)<bob@example.org>` as two addresses on this
Python (CVE-2023-27043), so subscriber addresses are checked against the plain dot-atom form instead: that is what
every real mailbox uses, and anything stranger is reported rather than guessed at. A display name may come with
it (`Ann Example <ann@example.org>`, RFC 5322 name-addr); it is split off first and kept.

Internationalised domains (`bücher.de`) are accepted and written in their IDNA 2008 form (`xn--bcher-kva.de`)
wherever mail needs ASCII: headers, the SMTP envelope, Message-IDs. Two spellings of one domain are one mailbox.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

import idna

from .errors import ConfigError, ContentError

if TYPE_CHECKING:  # the email package's header machinery costs 30 ms to import: only when a setting is parsed
    from email.headerregistry import Address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,"]')
_NAME_ADDR = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>\s*$")


def address_problem(addr: str) -> str | None:
    """Why `addr` (a bare address) is not a usable mailbox (`None` when it is)."""
    if not addr:
        return "empty address"
    if _SPACE_OR_CONTROL.search(addr):
        return f"invalid address {addr!r}: contains white space or a control character"
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return f"invalid address {addr!r}: expected name@domain"
    if len(local) > 64 or not _LOCAL.match(local):
        return f"invalid address {addr!r}: bad local part"
    if ascii_domain(domain) is None:
        return f"invalid address {addr!r}: bad domain"
    return None


def split_mailbox(value: str) -> tuple[str, str, str | None]:
    """`Name <addr>` or a bare `addr` -> (display name, address, problem or None)."""
    value = value.strip()
    if "<" in value or ">" in value:
        match = _NAME_ADDR.match(value)
        if match is None:
            return "", value, f"invalid address {value!r}: expected 'Name <name@example.org>' or name@example.org"
        name, addr = match["name"].strip(), match["addr"].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].strip()
            if '"' in name:
                return name, addr, f"invalid address {value!r}: a quote inside the quoted display name"
        elif _SPECIALS.search(name):  # `a@b.org)<c@d.org>` is two addresses to a lenient parser (CVE-2023-27043)
            return (
                name,
                addr,
                (
                    f'invalid address {value!r}: a display name with any of ( ) < > [ ] : ; @ \\ , " must be in '
                    'double quotes ("Name, Title" <name@example.org>)'
                ),
            )
    else:
        name, addr = "", value
    if _CONTROL.search(name):
        return name, addr, "display name contains a line break or control character"
    return name, addr, address_problem(addr)


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str | None:
    """The domain in IDNA (ASCII) form, or None when it is not a valid host name. Cached: a list has many
    addresses but few domains, and IDNA encoding is slow.

    IDNA 2008 with UTS #46 (non-transitional), as browsers and mail software do today: `straße.de` stays
    `xn--strae-oqa.de`, where Python's own IDNA 2003 codec sends it to `strasse.de`, someone else's domain.
    Characters a reader cannot see (zero-width joiners, soft hyphens, bidi controls) are refused outright:
    UTS #46 would silently drop some of them, and `b@a\u00adb.com` would become another domain's `b@ab.com`."""
    if any(_invisible(char) for char in domain):
        return None
    try:
        if domain.isascii():
            encoded = domain
            if "xn--" in domain.lower():
                idna.decode(domain)  # an A-label must be one IDNA 2008 allows
        else:
            encoded = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    labels = encoded.split(".")
    if len(labels) < 2 or len(encoded) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    return encoded


# default-ignorable code points outside the format (Cf) category: fillers, variation selectors, tags
_IGNORABLE = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
              (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0000, 0xE0FFF))  # fmt: skip


def _invisible(char: str) -> bool:
    """True for a character that shows nothing: controls, format characters, separators, unassigned, ignorable."""
    if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zs", "Zl", "Zp"):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE)


def ascii_address(addr: str) -> str:
    """The address with its domain in IDNA form, for headers and the SMTP envelope (no SMTPUTF8)."""
    if addr.isascii():
        return addr
    local, _, domain = addr.rpartition("@")
    return f"{local}@{ascii_domain(domain) or domain}"


def mailbox_key(addr: str) -> str:
    """One key per mailbox, for duplicates and the suppression list: lower case, IDNA domain."""
    return ascii_address(addr).lower()


def parse_mailbox(value: str, key: str, source: str = "configuration") -> Address:
    """Parse a setting such as `Name <a@b.org>` or `a@b.org` into an Address (domain in IDNA form), or raise
    ConfigError naming `key`."""
    name, addr, problem = split_mailbox(value)
    if "@" not in addr:
        raise ConfigError(f"{key}: {value!r} has no address (expected 'Name <name@example.org>')", source)
    if problem:
        raise ConfigError(f"{key}: {problem}", source)
    local, _, domain = ascii_address(addr).rpartition("@")
    from email.headerregistry import Address

    return Address(display_name=name, username=local, domain=domain)


def parse_recipient(value: str, line: int | None = None, path: str | None = None) -> tuple[str, str]:
    """A recipient as typed (`--to`, a CSV cell): (display name, address), or ContentError saying what is wrong."""
    name, addr, problem = split_mailbox(value)
    if problem:
        raise ContentError(problem, path, line)
    return name, addr
