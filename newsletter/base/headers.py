"""Header-value safety, checked on every value before it reaches a mail header.

`email` already refuses raw CR/LF, but Python 3.11.7 is open to CVE-2024-6923: an RFC 2047 encoded word that
decodes to a line break (`=?UTF-8?Q?=0A?=Bcc: x@example.com`) is written out as a real extra header. So every
value is checked both as written and as a mail reader would decode it.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from pathlib import Path

from .errors import HeaderInjectionError

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")
# Line breaks and other controls; NEL and the Unicode line/paragraph separators end a line for some parsers too.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def check_header_value(what: str, value: str, path: Path | str | None = None, line: int | None = None) -> str:
    """Return `value` unchanged, or raise HeaderInjectionError when it holds or encodes a line break."""
    if _CONTROL.search(value):
        raise HeaderInjectionError(f"{what} contains a line break or control character", path, line)
    if _ENCODED_WORD.search(value):
        try:
            decoded = str(make_header(decode_header(value)))
        except (UnicodeError, LookupError, ValueError):
            raise HeaderInjectionError(f"{what} contains a malformed encoded word (=?...?=)", path, line) from None
        if _CONTROL.search(decoded):
            raise HeaderInjectionError(
                f"{what} contains an encoded word that decodes to a line break (header injection)", path, line
            )
    return value
