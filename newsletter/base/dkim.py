"""DKIM signatures (RFC 6376), relaxed/relaxed, with RSA-SHA256 or Ed25519-SHA256 (RFC 8463).

Gmail and Yahoo ask bulk senders to sign with DKIM aligned to the From domain, and Gmail wants the one-click
headers (List-Unsubscribe, List-Unsubscribe-Post) signed, or it may not offer one-click. Every message `send`,
`send-test` and `export` produce is signed when DKIM_PRIVATE_KEY_FILE and DKIM_SELECTOR are set.

The private-key operation is the `cryptography` package's (OpenSSL), an order of magnitude faster than a
pure-Python RSA such as dkimpy's (docs/benchmarks.md); dkimpy verifies our signatures in the tests.
Canonicalisation (RFC 6376 3.4.2 and 3.4.4) is written out here: it is a few lines, and the composer's headers
are ours, so the cases are few.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .addresses import ascii_domain
from .errors import ConfigError

SIGNED_HEADERS = ("from", "reply-to", "to", "subject", "date", "message-id", "mime-version", "content-type",
                  "list-id", "list-unsubscribe", "list-unsubscribe-post")  # fmt: skip
MIN_RSA_BITS = 2048
_SPACES = re.compile(rb"  +")


@dataclass(frozen=True)
class DKIMKey:
    """A loaded signing key: `kind` is 'rsa' or 'ed25519'."""

    selector: str
    domain: str
    kind: str
    key: object = field(repr=False)
    source: str = ""


def load_key(path: str, selector: str, domain: str) -> DKIMKey:
    """Read and check a PEM private key, naming the setting in any error."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    _check_selector(selector)
    try:
        data = Path(path).read_bytes()
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ConfigError(f"DKIM_PRIVATE_KEY_FILE: cannot read {path}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"DKIM_PRIVATE_KEY_FILE: {path} is not an unencrypted PEM private key ({error})") from None
    if mode & 0o077:
        raise ConfigError(f"DKIM_PRIVATE_KEY_FILE: {path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                          f"whoever reads it can sign mail as you; `chmod 600 {path}`")  # fmt: skip
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"DKIM_PRIVATE_KEY_FILE: {path} is a {key.key_size}-bit RSA key; DKIM needs at least "
                              f"{MIN_RSA_BITS} bits (`newsletter dkim-keygen` makes one)")  # fmt: skip
        return DKIMKey(selector, domain, "rsa", key, path)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return DKIMKey(selector, domain, "ed25519", key, path)
    raise ConfigError(f"DKIM_PRIVATE_KEY_FILE: {path} is neither an RSA nor an Ed25519 key")


def _check_selector(selector: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})", selector or ""):
        raise ConfigError(f"DKIM_SELECTOR: {selector!r} is not a selector (letters, digits, '-', '.')")


def key_from_environment(env: dict, from_domain: str) -> DKIMKey | None:
    """The DKIM key the environment configures, checked against the From domain; None when DKIM is off."""
    path = env.get("DKIM_PRIVATE_KEY_FILE", "").strip()
    if not path:
        return None
    domain = (env.get("DKIM_DOMAIN", "").strip() or from_domain).lower()
    if ascii_domain(domain) is None:
        raise ConfigError(f"DKIM_DOMAIN: {domain!r} is not a domain name (such as example.org)")
    sender = from_domain.lower()
    if sender != domain and not sender.endswith("." + domain):
        raise ConfigError(f"DKIM_DOMAIN: {domain} does not match the From domain {from_domain} (DMARC needs the "
                          "signing domain to be the From domain or a parent of it)")  # fmt: skip
    return load_key(path, env.get("DKIM_SELECTOR", "").strip(), domain)


def _single_spaces(data: bytes) -> bytes:
    """Every run of spaces and tabs as one space: tabs first, then runs of spaces, two cheap passes where one
    alternation regex cost ten times as much."""
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    return _SPACES.sub(b" ", data) if b"  " in data else data


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of WSP become one space, WSP at line ends goes, empty lines at the end go.
    Whole-body regular expressions, not a loop over lines: this runs once per message."""
    body = _single_spaces(body).replace(b" \r\n", b"\r\n")
    if body.endswith(b" "):
        body = body[:-1]
    body = body.rstrip(b"\r\n") if body.endswith(b"\r\n") or not body.endswith(b"\n") else body
    return body + b"\r\n" if body else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, value unfolded, WSP runs to one space, no WSP around the value."""
    value = _single_spaces(value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _headers(block: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of a header block, folded lines joined to their field: (name, raw value)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


class DKIMSigner:
    """Signs composed messages with one key; build it once per send."""

    def __init__(self, key: DKIMKey) -> None:
        self.key = key

    def sign(self, message: bytes, now: float | None = None) -> bytes:
        """`message` with a DKIM-Signature header in front."""
        head, _, body = message.partition(b"\r\n\r\n")
        fields = _headers(head)
        present = {name.strip().lower() for name, _ in fields}
        names = [name for name in SIGNED_HEADERS if name.encode() in present]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        algorithm = "rsa-sha256" if self.key.kind == "rsa" else "ed25519-sha256"
        stamp = int(now if now is not None else time.time())
        tags = (f"v=1; a={algorithm}; c=relaxed/relaxed; d={self.key.domain}; s={self.key.selector};\r\n"
                f"\tt={stamp}; h={':'.join(names)};\r\n\tbh={body_hash};\r\n\tb=")  # fmt: skip
        signed = b"".join(relaxed_header(*_last(fields, name.encode())) + b"\r\n" for name in names)
        signed += relaxed_header(b"DKIM-Signature", b" " + tags.encode())
        signature = base64.b64encode(self._sign(signed)).decode()
        folded = "\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        return f"DKIM-Signature: {tags}{folded}\r\n".encode() + message

    def _sign(self, data: bytes) -> bytes:
        if self.key.kind == "rsa":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            return self.key.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.key.sign(hashlib.sha256(data).digest())  # RFC 8463: Ed25519 over the SHA-256 hash


def _last(fields: list[tuple[bytes, bytes]], name: bytes) -> tuple[bytes, bytes]:
    """The bottom-most field of that name (RFC 6376 5.4.2), which is the one a reader sees."""
    return next((n, v) for n, v in reversed(fields) if n.strip().lower() == name)


def generate_key(kind: str, selector: str, domain: str, out: Path) -> tuple[Path, str]:
    """A new private key in OUT/SELECTOR.private (0600), and the DNS TXT record that publishes its public half."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    _check_selector(selector)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{selector}.private"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    value = f"v=DKIM1; k={kind}; p={base64.b64encode(public).decode()}"
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))  # DNS strings hold 255
    return path, f"{selector}._domainkey.{domain} IN TXT {strings}"
