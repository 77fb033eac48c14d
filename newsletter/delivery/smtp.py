"""Stage 6, deliver over SMTP: one verified-TLS connection that sends many composed messages, on asyncio.

A small client of its own rather than smtplib, because `send` drives many connections from one thread and each
must wait for its own server without holding up the others; smtplib blocks. What the client does is what a
careful sender needs and no more: EHLO, STARTTLS or implicit TLS with certificates and host names always
verified (smtplib verifies nothing unless handed a context), AUTH PLAIN or LOGIN with UTF-8 credentials,
MAIL/RCPT/DATA in one write when the server offers PIPELINING (RFC 2920), and every reply code checked.

Safety rules kept here:
- `starttls` fails closed: a server that does not offer STARTTLS gets no credentials and no mail (the common
  `if has_extn("starttls")` pattern would send both in clear text);
- the password never reaches a log line or an error message: AUTH commands are logged as `<redacted>`, and every
  form of the password (plain, base64 as PLAIN and LOGIN send it) is removed from whatever is logged;
- a connection lost after the message went out and before the server's answer is `OutcomeUnknown`: the server
  may have stored it (RFC 1047), and only the user may decide to send it again.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import errno
import logging
import re
import socket
import ssl
from collections.abc import Mapping
from typing import NamedTuple

from ..base.addresses import ascii_address
from ..base.config import SMTPSettings, require_smtp_settings
from ..base.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    DeliveryError,
    OutcomeUnknown,
    PermanentFailure,
    SetupFailed,
    TemporaryFailure,
)
from ..edition.compose import ComposedMessage
from .transport import Transport, TransportFactory

log = logging.getLogger("newsletter.smtp")
# Replies that ask a sender to back off: 421 (too many connections, closing), and the enhanced status codes
# 4.7.x (policy: rate limited, try later) and 4.3.2 (system not accepting messages) in a 4xx reply.
_SLOW_DOWN = re.compile(r": 4\d\d 4\.(?:7\.\d{1,3}|3\.2)\b")
MAX_LINE = 1 << 16  # longest reply line we accept (RFC 5321 allows 512; servers append long texts)


def tls_context(settings: SMTPSettings) -> ssl.SSLContext:
    """The system's trusted CAs, plus SMTP_CA_FILE for a self-hosted relay; verification always on."""
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    return context


def secret_forms(settings: SMTPSettings) -> list[str]:
    """The password as it could appear on the wire: plain, and base64 as AUTH PLAIN and LOGIN send it."""
    if not settings.password:
        return []
    user, password = settings.username.encode(), settings.password.encode()
    raw = [password, b"\0" + user + b"\0" + password, user + b"\0" + password]
    return [settings.password] + [base64.b64encode(value).decode() for value in raw]


class SMTPStatus(enum.IntEnum):
    """The reply codes the dialogue acts on (RFC 5321 4.2, RFC 4954)."""

    READY = 220
    CLOSING = 221
    AUTH_OK = 235
    OK = 250
    WILL_FORWARD = 251
    AUTH_CONTINUE = 334
    START_INPUT = 354
    UNAVAILABLE = 421  # the server is closing the connection


class Reply(NamedTuple):
    """One SMTP reply: its code and the text of each of its lines."""

    code: int
    lines: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.code} {' '.join(' '.join(self.lines).split())}"

    @property
    def accepted(self) -> bool:
        """OK, or (to RCPT) "will forward"."""
        return self.code in (SMTPStatus.OK, SMTPStatus.WILL_FORWARD)

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def slows_down(self) -> bool:
        """The server asks for fewer connections or a slower pace: 421, or a 4.7.x / 4.3.2 status."""
        return self.code == SMTPStatus.UNAVAILABLE or bool(_SLOW_DOWN.search(f": {self}"))


NO_REPLY = Reply(0)  # a pipelined command left unanswered after an earlier refusal


class _Lost(Exception):
    """The server closed the connection (end of stream where a reply was due)."""


class SMTPTransport(Transport):
    """One SMTP connection: `open` connects, secures and logs in; `send` delivers one message on it."""

    def __init__(self, settings: SMTPSettings, sender: str, verbose: bool = False) -> None:
        self.settings = settings
        self.sender = ascii_address(sender)
        self.verbose = verbose
        self.where = f"{settings.host}:{settings.port}"
        self.extensions: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._secrets = secret_forms(settings)

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # --- opening ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, secure the connection as configured, and log in; raises ConnectionFailed or SetupFailed."""
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self._connect()
        except BaseException as error:
            self._drop()
            if isinstance(error, DeliveryError) or not isinstance(error, Exception):
                raise
            raise _translated(error, f"connect to {self.where}", self.settings.timeout) from None

    async def _connect(self) -> None:
        settings = self.settings
        implicit = tls_context(settings) if settings.security == "ssl" else None
        self._reader, self._writer = await asyncio.open_connection(
            settings.host, settings.port, ssl=implicit, server_hostname=settings.host if implicit else None,
            limit=MAX_LINE,
        )  # fmt: skip
        greeting = await self._reply()
        if greeting.code != SMTPStatus.READY:  # 421 here is the classic "too many connections from your address"
            raise ConnectionFailed(f"cannot connect to {self.where}: {greeting}", greeting.code, greeting.slows_down)
        await self._hello()
        if settings.security == "starttls":
            if "starttls" not in self.extensions:
                raise SetupFailed(
                    f"{self.where} does not offer STARTTLS; refusing to send credentials or mail in clear text "
                    "(set SMTP_SECURITY=ssl for implicit TLS, or SMTP_SECURITY=none to allow plain text)"
                )
            await self._expect("STARTTLS", SMTPStatus.READY, ConnectionFailed)
            await self._writer.start_tls(tls_context(settings), server_hostname=settings.host)
            await self._hello()
        if settings.username:
            await self._login()

    async def _hello(self) -> None:
        """EHLO (HELO for an old server), remembering the extensions offered."""
        sockname = self._writer.get_extra_info("sockname") or ("127.0.0.1",)
        literal = f"[IPv6:{sockname[0]}]" if ":" in str(sockname[0]) else f"[{sockname[0]}]"
        reply = await self._command(f"EHLO {literal}")
        if reply.code != SMTPStatus.OK:
            await self._expect(f"HELO {literal}", SMTPStatus.OK, ConnectionFailed)
            self.extensions = {}
            return
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, parameters = line.partition(" ")
            self.extensions[keyword.lower()] = parameters

    async def _login(self) -> None:
        user, password = self.settings.username, self.settings.password
        mechanisms = self.extensions.get("auth", "").upper().split()
        if "auth" not in self.extensions:
            raise SetupFailed(f"{self.where} does not offer AUTH, but SMTP_USERNAME is set")
        if "PLAIN" in mechanisms:
            credentials = _b64("\0" + user + "\0" + password)
            reply = await self._command(f"AUTH PLAIN {credentials}", secret=True)
        elif "LOGIN" in mechanisms:
            reply = await self._command("AUTH LOGIN", secret=True)
            if reply.code == SMTPStatus.AUTH_CONTINUE:
                reply = await self._command(_b64(user), secret=True)
            if reply.code == SMTPStatus.AUTH_CONTINUE:
                reply = await self._command(_b64(password), secret=True)
        else:
            raise SetupFailed(f"{self.where} offers AUTH {' '.join(mechanisms)}, but only PLAIN and LOGIN are known")
        if reply.code != SMTPStatus.AUTH_OK:
            raise AuthenticationFailed(f"authentication failed for user {user} at {self.where}: {reply}", reply.code)

    # --- sending ----------------------------------------------------------------------------------------------

    async def send(self, message: ComposedMessage) -> str:
        """MAIL, RCPT and DATA (one write when pipelined), the message, and the server's checked final reply."""
        if self._writer is None:
            raise ConnectionFailed(f"cannot send via {self.where}: not connected")
        email = message.recipient.email
        recipient = ascii_address(email)
        data = message.data if message.dot_safe else _dot_stuffed(message.data)
        went_out = False
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self._envelope(recipient, ascii_address(message.envelope_from) or self.sender)
                went_out = True  # from here on a lost connection leaves it unknown whether the server kept it
                self._writer.write(data + b".\r\n")
                if self.verbose:
                    log.info("smtp send: the message (%s bytes) and '.'", f"{len(data):,}")
                await self._writer.drain()
                reply = await self._reply()
        except DeliveryError:
            raise
        except Exception as error:
            self._drop()
            failure = _translated(error, f"send to {email} via {self.where}", self.settings.timeout)
            if went_out:
                raise OutcomeUnknown(failure.message) from None
            raise ConnectionFailed(failure.message) from None
        if reply.code != SMTPStatus.OK:
            self._after_refusal(reply)
            raise _refusal(f"{self.where}: message to {recipient} refused after DATA: {reply}", reply)
        return str(reply)

    async def _envelope(self, recipient: str, sender: str) -> None:
        """MAIL FROM, RCPT TO and DATA up to the server's 354; a refusal resets the session and raises."""
        commands = [f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"]
        replies: list[Reply] = []
        if "pipelining" in self.extensions:
            self._write("".join(f"{command}\r\n" for command in commands), commands)
            replies = [await self._reply() for _ in commands]
        else:
            for command in commands:
                replies.append(await self._command(command))
                if replies[-1].code >= 400:
                    break
        mail, rcpt, data = replies + [NO_REPLY] * (3 - len(replies))
        if mail.code == SMTPStatus.OK and rcpt.accepted and data.code == SMTPStatus.START_INPUT:
            return
        if data.code == SMTPStatus.START_INPUT:  # pipelined DATA was accepted although MAIL or RCPT was not
            await self._command(".")
        self._after_refusal(next(reply for reply in (mail, rcpt, data) if not reply.accepted))
        if self._writer is not None:
            await self._command("RSET")
        if mail.code != SMTPStatus.OK:
            raise _refusal(f"{self.where}: MAIL FROM:<{sender}> refused: {mail}", mail)
        if not rcpt.accepted:
            raise _refusal(f"{self.where} refused recipient {recipient}: {rcpt}", rcpt)
        raise _refusal(f"{self.where}: DATA refused: {data}", data)

    def _after_refusal(self, reply: Reply) -> None:
        """421 means the server is closing this connection (RFC 5321 3.8): drop our end too."""
        if reply.code == SMTPStatus.UNAVAILABLE:
            self._drop()

    # --- closing ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """QUIT politely (briefly: a hung server does not hold us up); a dead connection is simply dropped."""
        if self._writer is None:
            return
        try:
            async with asyncio.timeout(min(self.settings.timeout, 5.0)):
                await self._command("QUIT")
        except Exception:
            pass
        self._drop()

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    # --- the dialogue -----------------------------------------------------------------------------------------

    async def _command(self, line: str, secret: bool = False) -> Reply:
        self._write(f"{line}\r\n", ["AUTH <redacted>" if secret else line])
        return await self._reply()

    async def _expect(self, line: str, code: int, failure: type[DeliveryError]) -> None:
        reply = await self._command(line)
        if reply.code != code:
            raise failure(f"cannot connect to {self.where}: {line.split()[0]} refused: {reply}", reply.code)

    def _write(self, text: str, shown: list[str]) -> None:
        if self._writer is None:
            raise _Lost()
        if self.verbose:
            for line in shown:
                log.info("smtp send: %r", self._redacted(line))
        self._writer.write(text.encode("ascii"))

    async def _reply(self) -> Reply:
        """One reply, all its lines."""
        if self._reader is None:
            raise _Lost()
        texts = []
        while True:
            line = await self._reader.readline()
            if not line.endswith(b"\n"):
                raise _Lost()
            if len(line) < 5 and line[:3].isdigit():
                line = line.rstrip() + b" \r\n"
            if not line[:3].isdigit() or line[3:4] not in (b" ", b"-"):
                raise ConnectionFailed(f"{self.where} sent something that is not an SMTP reply: {line[:80]!r}")
            texts.append(line[4:].decode("utf-8", "replace").strip())
            if self.verbose:
                log.info("smtp reply: %s", self._redacted(line.decode("utf-8", "replace").rstrip()))
            if line[3:4] == b" ":
                return Reply(int(line[:3]), tuple(texts))

    def _redacted(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, "<redacted>")
        return line


def _refusal(message: str, reply: Reply) -> DeliveryError:
    if reply.permanent:
        return PermanentFailure(message, reply.code)
    return TemporaryFailure(message, reply.code, slow_down=reply.slows_down)


def _translated(error: BaseException, action: str, timeout: float) -> DeliveryError:
    """Socket, TLS and protocol exceptions as one-line errors naming the action and host:port."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return SetupFailed(
            f"cannot {action}: TLS certificate not trusted ({error.verify_message}); "
            "set SMTP_CA_FILE to the CA that signed it"
        )
    if isinstance(error, ssl.SSLError):
        return ConnectionFailed(f"cannot {action}: TLS failed ({error.reason or error})")
    if isinstance(error, TimeoutError):
        return ConnectionFailed(f"cannot {action}: no answer within {timeout:g} s (SMTP_TIMEOUT)")
    if isinstance(error, ConnectionRefusedError):
        return ConnectionFailed(f"cannot {action}: connection refused (is the server running?)")
    if isinstance(error, socket.gaierror):
        return ConnectionFailed(f"cannot {action}: host not found ({error.strerror})")
    if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectionFailed(f"cannot {action}: host unreachable ({error.strerror})")
    if isinstance(error, (_Lost, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)):
        return ConnectionFailed(f"cannot {action}: the server closed the connection")
    return ConnectionFailed(f"cannot {action}: {error.__class__.__name__}: {error}")


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2): a line starting with a dot gets a second one. `data`
    never starts with a dot (it starts with a header) and ends in CRLF."""
    return data.replace(b"\r\n.", b"\r\n..") if b"\r\n." in data else data


def _b64(text: str) -> str:
    """Credentials as UTF-8 (RFC 4616, RFC 4954); smtplib insists on ASCII and fails on `Pässword`."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def from_settings(settings: Mapping[str, str], sender: str, verbose: bool = False) -> tuple[TransportFactory, str]:
    """A connection per lane to the relay SMTP_HOST names."""
    smtp = require_smtp_settings(settings)
    return lambda: SMTPTransport(smtp, sender, verbose), f"{smtp.host}:{smtp.port}"
