"""Stage 6, deliver over SMTP: one verified-TLS connection that sends many composed messages.

smtplib verifies nothing unless handed an SSL context, and the common `if has_extn("starttls")` pattern sends
credentials in clear text to a server that does not offer STARTTLS. Here certificates and host names are always
verified, `starttls` fails closed, and every reply code is checked (`SMTP.data()` returns its reply rather than
raising). Failures become one-line `DeliveryError`s; the password never appears in one, nor in the debug log.
"""

from __future__ import annotations

import base64
import errno
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from types import TracebackType

from .compose import ComposedMessage
from .config import SMTPSettings
from .errors import AuthenticationFailed, DeliveryError

log = logging.getLogger("newsletter.smtp")


def tls_context(settings: SMTPSettings) -> ssl.SSLContext:
    """The system's trusted CAs, plus SMTP_CA_FILE for a self-hosted relay; verification always on."""
    context = ssl.create_default_context()
    if settings.ca_file:
        context.load_verify_locations(cafile=settings.ca_file)
    return context


def envelope_address(email: str) -> str:
    """The address as SMTP carries it without SMTPUTF8: an internationalised domain in its IDNA form."""
    if email.isascii():  # the common case; addresses were validated when the list was loaded
        return email
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def secret_forms(settings: SMTPSettings) -> list[str]:
    """The password as it could appear on the wire: plain, and base64 as AUTH PLAIN and LOGIN send it."""
    if not settings.password:
        return []
    user, password = settings.username.encode(), settings.password.encode()
    raw = [password, b"\0" + user + b"\0" + password, user + b"\0" + password]
    return [settings.password] + [base64.b64encode(value).decode() for value in raw]


class _RedactingSMTPMixin:
    """Routes smtplib's debug output to logging with AUTH commands and every form of the password removed."""

    def __init__(self, *args: object, secrets: list[str], verbose: bool, **kwargs: object) -> None:
        self.secrets = secrets
        self.debuglevel = 1 if verbose else 0  # set before smtplib connects, so the greeting is logged too
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def _print_debug(self, *args: object) -> None:
        line = " ".join(str(arg) for arg in args)
        if "AUTH " in line.upper() and "send:" in line:
            line = "send: 'AUTH <redacted>'"
        for secret in self.secrets:
            line = line.replace(secret, "<redacted>")
        if len(line) > 200:  # the message itself, after DATA
            line = f"{line[:120]}... ({len(line):,} characters)"
        log.info("smtp %s", line)

    def auth(self, mechanism: str, authobject: Callable, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        """smtplib's AUTH exchange, but with credentials encoded as UTF-8 (RFC 4616, RFC 4954) where smtplib
        insists on ASCII and raises UnicodeEncodeError on a password such as `Pässword`."""
        smtp: smtplib.SMTP = self  # type: ignore[assignment]
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            smtp._auth_challenge_count = 1  # type: ignore[attr-defined]
            code, reply = smtp.docmd("AUTH", f"{mechanism.upper()} {_b64(initial)}")
        else:
            smtp._auth_challenge_count = 0  # type: ignore[attr-defined]
            code, reply = smtp.docmd("AUTH", mechanism.upper())
        while code == 334 and smtp._auth_challenge_count < 5:  # type: ignore[attr-defined]
            smtp._auth_challenge_count += 1  # type: ignore[attr-defined]
            code, reply = smtp.docmd(_b64(authobject(base64.decodebytes(reply))))
        if code in (235, 503):
            return code, reply
        raise smtplib.SMTPAuthenticationError(code, reply)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class _SMTP(_RedactingSMTPMixin, smtplib.SMTP):
    pass


class _SMTPSSL(_RedactingSMTPMixin, smtplib.SMTP_SSL):
    pass


class SMTPBackend:
    """An open, authenticated connection; use as a context manager and call `send` for each message."""

    def __init__(self, settings: SMTPSettings, sender: str, verbose: bool = False) -> None:
        self.settings = settings
        self.sender = envelope_address(sender)
        self.verbose = verbose
        self._smtp: smtplib.SMTP | None = None
        self._in_flight: ComposedMessage | None = None  # started and not yet finished
        self._replies: list[tuple[int, bytes]] = []  # replies already read by `start` (no PIPELINING)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def __enter__(self) -> SMTPBackend:
        self.connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        """Connect, secure the connection as configured, and log in; raises DeliveryError naming host:port."""
        with self._translated("connect to"):
            self._smtp = self._open()
            try:
                if self.settings.username:
                    self._login(self._smtp)
            except BaseException:
                self.close()  # say QUIT rather than leave the refused session open
                raise

    def _open(self) -> smtplib.SMTP:
        settings = self.settings
        options = {"timeout": settings.timeout, "secrets": secret_forms(settings), "verbose": self.verbose}
        if settings.security == "ssl":
            smtp: smtplib.SMTP = _SMTPSSL(settings.host, settings.port, context=tls_context(settings), **options)
        else:
            smtp = _SMTP(settings.host, settings.port, **options)
        try:
            smtp.ehlo_or_helo_if_needed()
            if settings.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise DeliveryError(
                        f"{self.where} does not offer STARTTLS; refusing to send credentials or mail in clear text "
                        "(set SMTP_SECURITY=ssl for implicit TLS, or SMTP_SECURITY=none to allow plain text)"
                    )
                smtp.starttls(context=tls_context(settings))
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        if not smtp.has_extn("auth"):
            raise DeliveryError(f"{self.where} does not offer AUTH, but SMTP_USERNAME is set")
        try:
            smtp.login(self.settings.username, self.settings.password)
        except smtplib.SMTPAuthenticationError as error:
            reply = _reply(error.smtp_code, error.smtp_error)
            raise AuthenticationFailed(
                f"authentication failed for user {self.settings.username} at {self.where}: {reply}", error.smtp_code
            ) from None

    def send(self, message: ComposedMessage, before_data: Callable[[], None] | None = None) -> str:
        """Send one message and return the server's final reply (the three steps below, one after the other)."""
        self.start(message)
        self.transmit(before_data)
        return self.finish()

    def start(self, message: ComposedMessage) -> None:
        """Step 1 of a send: MAIL, RCPT and DATA, in one write when the server offers PIPELINING (RFC 2920).

        The steps are separate so that one process can drive several connections at once: start each, then
        transmit on each, then finish each, while the server works on the others' messages. Without PIPELINING
        the commands go one by one here, stopping at the first refusal."""
        smtp = self._require()
        self._in_flight = message
        commands = [f"MAIL FROM:<{self.sender}>", f"RCPT TO:<{envelope_address(message.recipient.email)}>", "DATA"]
        self._replies = []
        with self._translated(f"send to {message.recipient.email} via"):
            if smtp.has_extn("pipelining"):
                smtp.send("".join(f"{command}\r\n" for command in commands))
                return
            for command in commands:
                smtp.putcmd(command)
                self._replies.append(smtp.getreply())
                if self._replies[-1][0] >= 400:
                    break

    def transmit(self, before_data: Callable[[], None] | None = None) -> None:
        """Step 2: check the replies to MAIL, RCPT and DATA, then write the message.

        `before_data` runs once the server has said 354 and before the first byte of the message: from then on a
        lost connection leaves it unknown whether the server kept the message (RFC 1047)."""
        smtp, message = self._require(), self._message()
        recipient = envelope_address(message.recipient.email)
        with self._translated(f"send to {message.recipient.email} via"):
            replies = self._replies or [smtp.getreply() for _ in range(3)]
            (mail, rcpt, data) = replies + [(0, b"")] * (3 - len(replies))
            if mail[0] != 250 or rcpt[0] not in (250, 251) or data[0] != 354:
                self._in_flight = None
                if data[0] != 354:
                    smtp.rset()
                else:  # pipelined DATA was accepted although MAIL or RCPT was not: end it empty, then reset
                    smtp.send(b".\r\n")
                    smtp.getreply()
                    smtp.rset()
                if mail[0] != 250:
                    raise DeliveryError(f"{self.where}: MAIL FROM:<{self.sender}> refused: {_reply(*mail)}", mail[0])
                if rcpt[0] not in (250, 251):
                    raise DeliveryError(f"{self.where} refused recipient {recipient}: {_reply(*rcpt)}", rcpt[0])
                raise DeliveryError(f"{self.where}: DATA refused: {_reply(*data)}", data[0])
            if before_data:
                before_data()
            smtp.send((message.data if message.dot_safe else _dot_stuffed(message.data)) + b".\r\n")

    def finish(self) -> str:
        """Step 3: the server's final reply to the message, checked; returns it."""
        smtp, message = self._require(), self._message()
        self._in_flight = None
        with self._translated(f"send to {message.recipient.email} via"):
            code, reply = smtp.getreply()
            if code != 250:
                raise DeliveryError(
                    f"{self.where}: message to {envelope_address(message.recipient.email)} refused after DATA: "
                    f"{_reply(code, reply)}",
                    code,
                )
        return _reply(code, reply)

    def _message(self) -> ComposedMessage:
        if self._in_flight is None:
            raise DeliveryError("no message in flight: call start() first")
        return self._in_flight

    def _require(self) -> smtplib.SMTP:
        if self._smtp is None:
            raise DeliveryError("not connected")
        return self._smtp

    def close(self) -> None:
        """QUIT politely; a connection that is already gone is simply dropped."""
        self._in_flight = None
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()
        self._smtp = None

    def _translated(self, action: str) -> _Translate:
        return _Translate(self, action)


class _Translate:
    """Turns socket, TLS and smtplib exceptions into one-line DeliveryErrors naming the action and host:port."""

    def __init__(self, backend: SMTPBackend, action: str) -> None:
        self.backend = backend
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if error is None or isinstance(error, DeliveryError) or not isinstance(error, Exception):
            return
        where = self.backend.where
        timeout = self.backend.settings.timeout
        if isinstance(error, ssl.SSLCertVerificationError):
            message = (
                f"cannot {self.action} {where}: TLS certificate not trusted ({error.verify_message}); "
                "set SMTP_CA_FILE to the CA that signed it"
            )
        elif isinstance(error, ssl.SSLError):
            message = f"cannot {self.action} {where}: TLS failed ({error.reason or error})"
        elif isinstance(error, (TimeoutError, socket.timeout)) or "timed out" in str(error):
            message = f"cannot {self.action} {where}: no answer within {timeout:g} s (SMTP_TIMEOUT)"
        elif isinstance(error, ConnectionRefusedError):
            message = f"cannot {self.action} {where}: connection refused (is the server running?)"
        elif isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            message = f"cannot {self.action} {where}: host unreachable ({error.strerror})"
        elif isinstance(error, socket.gaierror):
            message = f"cannot {self.action} {where}: host not found ({error.strerror})"
        elif isinstance(error, smtplib.SMTPServerDisconnected):
            message = f"cannot {self.action} {where}: the server closed the connection"
        elif isinstance(error, smtplib.SMTPResponseException):
            message = f"cannot {self.action} {where}: {_reply(error.smtp_code, error.smtp_error)}"
            raise DeliveryError(message, error.smtp_code) from None
        elif isinstance(error, (smtplib.SMTPException, OSError)):
            message = f"cannot {self.action} {where}: {error.__class__.__name__}: {error}"
        else:
            return
        raise DeliveryError(message) from None


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it (RFC 5321 4.5.2): a line starting with a dot gets a second one. `data`
    never starts with a dot (it starts with a header) and ends in CRLF."""
    return data.replace(b"\r\n.", b"\r\n..") if b"\r\n." in data else data


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _reply(code: int, reply: bytes | str) -> str:
    return f"{code} {_text(reply)}"
