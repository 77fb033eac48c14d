"""Strict e-mail address checks, written out because the standard parsers are too lenient.

`email.utils.parseaddr` / `getaddresses` accept `alice@example.org)<bob@example.org>` as two addresses on this
Python (CVE-2023-27043), so subscriber addresses are checked against the plain dot-atom form instead: that is what
every real mailbox uses, and anything stranger is reported rather than guessed at.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from functools import lru_cache

from .errors import ConfigError, ContentError

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_NAME_ADDR = re.compile(r"^\s*(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$")


def address_problem(addr: str) -> str | None:
    """Why `addr` is not a usable mailbox (`None` when it is)."""
    if not addr:
        return "empty address"
    if _SPACE_OR_CONTROL.search(addr):
        return f"invalid address {addr!r}: contains white space or a control character"
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        return f"invalid address {addr!r}: expected name@domain"
    if len(local) > 64 or not _LOCAL.match(local):
        return f"invalid address {addr!r}: bad local part"
    if not _domain_ok(domain):
        return f"invalid address {addr!r}: bad domain"
    return None


@lru_cache(maxsize=4096)
def _domain_ok(domain: str) -> bool:
    """Cached: a subscriber list has many addresses but few domains, and IDNA encoding is slow."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_domain.split(".")
    return len(labels) >= 2 and len(ascii_domain) <= 253 and all(_LABEL.match(label) for label in labels)


def parse_mailbox(value: str, key: str, source: str = "configuration") -> Address:
    """Parse a setting such as `Name <a@b.org>` or `a@b.org` into an Address, or raise ConfigError naming `key`."""
    match = _NAME_ADDR.match(value)
    name, addr = (match["name"].strip('"'), match["addr"].strip()) if match else ("", value.strip())
    if "@" not in addr:
        raise ConfigError(f"{key}: {value!r} has no address (expected 'Name <name@example.org>')", source)
    problem = address_problem(addr)
    if problem is None and any(ch in name for ch in "\r\n"):
        problem = "display name contains a line break"
    if problem:
        raise ConfigError(f"{key}: {problem}", source)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def normalise_address(addr: str, line: int | None = None, path: str | None = None) -> str:
    """Return `addr` stripped, or raise ContentError with the file and line it came from."""
    addr = addr.strip()
    problem = address_problem(addr)
    if problem:
        raise ContentError(problem, path, line)
    return addr
