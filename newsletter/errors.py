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
    """The SMTP server could not be reached, refused us, or refused the message.

    `code` is the server's reply code where there was one: 4xx is worth retrying later, 5xx is final.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def permanent(self) -> bool:
        return self.code is not None and 500 <= self.code < 600


class AuthenticationFailed(DeliveryError):
    """The server rejected the configured username and password."""
