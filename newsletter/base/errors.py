"""The one exception family of `newsletter`.

Every error the library raises on bad input or a failed delivery is a `NewsletterError`, so the CLI can turn
any of them into a single line (`file:line: problem`) without knowing which stage raised it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class NewsletterError(Exception):
    """Base error: a message plus, where known, the file and line it concerns."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        return self.describe(str)

    def describe(self, show_path: Callable[[Path], str]) -> str:
        """`file:line: message`, with the path shown as `show_path` renders it (the CLI makes it relative)."""
        if self.path is None:
            return self.message
        where = show_path(self.path) if self.line is None else f"{show_path(self.path)}:{self.line}"
        return f"{where}: {self.message}"


class ContentError(NewsletterError):
    """An edition, article, template or recipients file that cannot be used as it is."""


class DataError(ContentError):
    """A data file the user keeps (a recipients or suppression list) that cannot be used as it is (EX_DATAERR)."""


class ConfigError(NewsletterError):
    """A setting in newsletter.toml, the environment or .env that is missing or malformed."""


class HeaderInjectionError(ContentError):
    """A value bound for a mail header that would add a line (raw or RFC 2047-encoded CR/LF)."""


class JournalError(NewsletterError):
    """The send journal could not be read or written; sending stops rather than lose track of a recipient."""


class CheckFailed(NewsletterError):
    """The edition was built but fails one or more checks; `problems` holds one line each."""

    def __init__(self, problems: list[str], path: Path | str | None = None) -> None:
        super().__init__(f"{len(problems)} check(s) failed", path)
        self.problems = problems


class DeliveryError(NewsletterError):
    """A message or a connection failed, in words that do not depend on the transport (SMTP, files, an API).

    `code` is the server's reply code where there was one. The subclasses say what the failure means for the
    recipient, which is all the send loop needs to know: try again later, give up, or ask the user.
    `slow_down` says the receiver asked for fewer connections or a slower pace (SMTP 421 or 4.7.x, HTTP 429).
    """

    def __init__(self, message: str, code: int | None = None, slow_down: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.slow_down = slow_down

    @property
    def permanent(self) -> bool:
        return self.code is not None and 500 <= self.code < 600


class TemporaryFailure(DeliveryError):
    """Not delivered, and worth trying again later: a 4xx reply, or a connection lost before the message went out."""


class PermanentFailure(DeliveryError):
    """Refused for good (a 5xx reply to this message or recipient)."""


class OutcomeUnknown(DeliveryError):
    """Lost after the message went out and before the server's answer: it may or may not have been stored
    (RFC 1047), so sending it again could deliver it twice."""


class ConnectionFailed(TemporaryFailure):
    """No usable connection (refused, timed out, dropped between messages, a 4xx/5xx greeting): the server's
    problem, charged to no recipient."""


class SetupFailed(DeliveryError):
    """The delivery settings cannot work as they are (certificate not trusted, no STARTTLS, no AUTH): trying
    again changes nothing until the user fixes them."""


class AuthenticationFailed(SetupFailed):
    """The server rejected the configured username and password."""
