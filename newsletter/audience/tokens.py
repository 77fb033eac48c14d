"""Unsubscribe tokens that verify themselves: the URL says who and for which list, sealed with the secret key.

`serve` must know whom to unsubscribe from the URL alone, without a table of every subscriber, and the URL must
not show the address (it passes through logs, proxies and link scanners). So the token is the address encrypted
and authenticated with keys derived from NEWSLETTER_UNSUBSCRIBE_SECRET, as a synthetic-IV construction built
from the standard library's HMAC-SHA256 (deterministic authenticated encryption, RFC 5297's idea):

    tag        = HMAC(mac key, list id || address)[:16]      -- also the IV
    ciphertext = address XOR HMAC-SHA256(encryption key, tag || counter) ...
    token      = base64url(tag || ciphertext)

Reading a token decrypts with the tag and checks the tag against the address it yields (compare_digest), for
each key in turn: NEWSLETTER_UNSUBSCRIBE_SECRET may list the current key first and older ones after it
(comma-separated), so links in mail sent before a rotation keep working. A tampered, truncated or foreign token
reads as None. The same address and list always give the same token, so a resumed send links the same way.

An undo token (for "resubscribe") adds the time it was issued and is valid for UNDO_SECONDS; a confirmation token
(double opt-in) adds the sign-up time and is valid for CONFIRM_SECONDS. Each purpose seals under its own list
label, so no token of one kind reads as another.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import struct
import time

from ..base.addresses import mailbox_key
from ..base.config import secret_keys
from ..base.errors import ConfigError

DEVELOPMENT_KEY = "newsletter-development-key"
UNDO_SECONDS = 7 * 24 * 3600
_TAG = 16


def unsubscribe_keys(secret: str) -> list[bytes]:
    """The keys NEWSLETTER_UNSUBSCRIBE_SECRET lists, current first; the public development key when unset,
    which only a dry run or a test send may use (`required_keys` is for everything else)."""
    return [key.encode("utf-8") for key in secret_keys(secret)] or [DEVELOPMENT_KEY.encode()]


def required_keys(secret: str, command: str) -> list[bytes]:
    """The keys, for a command that must never fall back to the public development key (send, serve, bounces):
    with it, anyone could make a working unsubscribe link, or a VERP tag, for any address."""
    if not secret_keys(secret):
        raise ConfigError(
            f"NEWSLETTER_UNSUBSCRIBE_SECRET must be set for `{command}`: it seals the unsubscribe links and return "
            "paths (`newsletter init` writes one into .env)"
        )
    return unsubscribe_keys(secret)


@functools.lru_cache(maxsize=64)
def _keyed(key: bytes, purpose: bytes) -> hmac.HMAC:
    """A ready HMAC-SHA256 under the subkey for `purpose`; copying it costs less than keying a new one."""
    subkey = hmac.digest(key, b"newsletter unsubscribe token: " + purpose, "sha256")
    return hmac.new(subkey, digestmod=hashlib.sha256)


def _mac(key: bytes, purpose: bytes, message: bytes) -> bytes:
    mac = _keyed(key, purpose).copy()
    mac.update(message)
    return mac.digest()


def _tag(key: bytes, list_id: str, address: bytes) -> bytes:
    return _mac(key, b"mac", list_id.encode("utf-8") + b"\0" + address)[:_TAG]


def _stream(key: bytes, tag: bytes, length: int) -> bytes:
    return b"".join(_mac(key, b"encryption", tag + struct.pack(">I", n)) for n in range((length + 31) // 32))[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(token: str) -> bytes | None:
    """The token's bytes, only from their one canonical spelling: base64 lets the unused low bits of the last
    character vary, and a token that could be spelled two ways would be two tokens to a log or a replay check."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{22,400}", token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _encode(raw) == token else None


def seal(keys: list[bytes], list_id: str, payload: bytes) -> str:
    """`payload` encrypted and authenticated for `list_id` with the current key."""
    tag = _tag(keys[0], list_id, payload)
    return _encode(tag + _xor(payload, _stream(keys[0], tag, len(payload))))


def unseal(keys: list[bytes], list_id: str, token: str) -> bytes | None:
    """The payload of a token sealed with any of `keys` for `list_id`, or None."""
    raw = _decode(token)
    if raw is None or len(raw) <= _TAG:
        return None
    tag, sealed = raw[:_TAG], raw[_TAG:]
    for key in keys:
        payload = _xor(sealed, _stream(key, tag, len(sealed)))
        if hmac.compare_digest(_tag(key, list_id, payload), tag):
            return payload
    return None


def unsubscribe_token(keys: list[bytes], list_id: str, email: str) -> str:
    return seal(keys, list_id, mailbox_key(email).encode("utf-8"))


def read_unsubscribe_token(keys: list[bytes], list_id: str, token: str) -> str | None:
    """The address an unsubscribe token stands for, or None for anything not made with our keys."""
    payload = unseal(keys, list_id, token)
    if payload is None:
        return None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _timed_token(keys: list[bytes], list_id: str, purpose: str, email: str, at: float) -> str:
    """An address and a time (when it was issued, or when the person signed up), sealed for one purpose."""
    return seal(keys, f"{list_id}\0{purpose}", f"{int(at)}\0{mailbox_key(email)}".encode())


def _read_timed(keys: list[bytes], list_id: str, purpose: str, token: str, valid: float,
                now: float | None) -> tuple[str, int] | None:  # fmt: skip
    """(address, time) of a timed token of ours for `purpose`, or None when it is not, or is over `valid` old."""
    payload = unseal(keys, f"{list_id}\0{purpose}", token)
    if payload is None:
        return None
    issued, _, address = payload.decode("utf-8", "replace").partition("\0")
    if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > valid:
        return None
    return address, int(issued)


def undo_token(keys: list[bytes], list_id: str, email: str, now: float | None = None) -> str:
    return _timed_token(keys, list_id, "undo", email, now if now is not None else time.time())


def read_undo_token(keys: list[bytes], list_id: str, token: str, now: float | None = None) -> str | None:
    """The address to resubscribe, or None when the token is not ours or more than UNDO_SECONDS old."""
    found = _read_timed(keys, list_id, "undo", token, UNDO_SECONDS, now)
    return found[0] if found else None


CONFIRM_SECONDS = 7 * 24 * 3600  # how long a confirmation link works after the sign-up it confirms


def confirm_token(keys: list[bytes], list_id: str, email: str, signed_up: float) -> str:
    """The link of a confirmation mail: the address and its sign-up time, sealed."""
    return _timed_token(keys, list_id, "confirm", email, signed_up)


def read_confirm_token(keys: list[bytes], list_id: str, token: str, now: float | None = None) -> tuple[str, int] | None:
    """(address, sign-up time) of a confirmation link of ours at most CONFIRM_SECONDS old, or None."""
    return _read_timed(keys, list_id, "confirm", token, CONFIRM_SECONDS, now)


def _code(text: str, length: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")[:length].lower()


def edition_code(list_id: str, edition: str) -> str:
    """Five characters that tell an edition apart from the others of the list, in a VERP tag."""
    return _code(f"{list_id}\0{edition}", 5)


def verp_tag(keys: list[bytes], list_id: str, edition: str, row_id: int) -> str:
    """`k3j4h-123-a7f3k2m9`: the edition, the recipient's row in its send journal, and a MAC, short enough for a
    local part (`bounces+TAG`), in lower case because some servers lower-case what they bounce to."""
    code = edition_code(list_id, edition)
    return f"{code}-{row_id}-{_verp_mac(keys[0], list_id, code, row_id)}"


def _verp_mac(key: bytes, list_id: str, code: str, row_id: int) -> str:
    return base64.b32encode(_mac(key, b"verp", f"{list_id}\0{code}\0{row_id}".encode())).decode()[:8].lower()


def read_verp_tag(keys: list[bytes], list_id: str, tag: str) -> tuple[str, int] | None:
    """(edition code, row id) of a tag made with any of `keys`, or None."""
    match = re.fullmatch(r"([a-z2-7]{5})-(\d{1,9})-([a-z2-7]{8})", tag.lower())
    if match is None:
        return None
    code, row_id, mac = match[1], int(match[2]), match[3]
    for key in keys:
        if hmac.compare_digest(_verp_mac(key, list_id, code, row_id), mac):
            return code, row_id
    return None


def message_id_for(edition_name: str, list_id: str, email: str, domain: str, key: bytes) -> str:
    """Stable per edition and recipient, so every attempt to one recipient carries the same Message-ID; keyed
    with the list's key, so that a report quoting it is evidence the message went from us to that address (a
    Message-ID anyone could compute from the address would be no evidence at all)."""
    return f"<{_message_digest(key, list_id, edition_name, email)}.{message_label(edition_name)}@{domain}>"


def _message_digest(key: bytes, list_id: str, edition_name: str, email: str) -> str:
    return _mac(key, b"message-id", f"{list_id}\0{edition_name}\0{mailbox_key(email)}".encode()).hex()[:32]


def sent_to(keys: list[bytes], list_id: str, message_id: str, email: str, editions: list[str]) -> str | None:
    """The edition of ours whose message to `email` carried `message_id`, or None: a quoted Message-ID is
    evidence only for the address it was made for."""
    match = re.fullmatch(r"\s*<([0-9a-f]{32})\.([A-Za-z0-9-]+)@[^>]+>\s*", message_id or "")
    if match is None or not email:
        return None
    for edition in (name for name in editions if message_label(name) == match[2]):
        for key in keys:
            if hmac.compare_digest(_message_digest(key, list_id, edition, email), match[1]):
                return edition
    return None


@functools.lru_cache
def message_label(edition_name: str) -> str:
    """The edition as our Message-IDs show it (what `bounces` reads back from a quoted original)."""
    return re.sub(r"[^A-Za-z0-9-]", "", edition_name)[:40] or "edition"


FORGOTTEN = "forgotten-"  # what a forgotten mailbox's key and address become in the stores and journals


def forgotten_marks(keys: list[bytes], mailbox: str) -> list[str]:
    """What a forgotten mailbox (its key) is replaced by, under each key, current first: a keyed hash, so the
    stores can still refuse it while no file names it, and nobody without the key can test an address."""
    return [FORGOTTEN + _mac(key, b"forgotten", mailbox.encode()).hex()[:32] for key in keys]
