"""Stage 6, deliver: one small interface between a composed message and wherever it goes.

A `Transport` opens, sends one composed message at a time, and closes. `send`, `send-test` and `export` all
deliver through it, so a dry run to files takes the same path as a real send. Failures are transport-neutral
(`errors.TemporaryFailure`, `PermanentFailure`, `OutcomeUnknown`, `ConnectionFailed`, `SetupFailed`): the send
loop decides what they mean for a recipient without knowing whether SMTP, files or an HTTP API is behind them.

The interface is asynchronous because one process drives many connections at once, each at its own server's
pace (see `send`). Files and memory never wait, so for them `await` costs next to nothing.

Implementations: `smtp.SMTPTransport`, `FileTransport` and `MemoryTransport` here. Another one (an ESP's HTTP
batch API) is a new module plus a branch in `transport_for`.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ..base.config import SMTPSettings, require_smtp_settings
from ..base.errors import DeliveryError
from ..base.writer import atomic_write, safe_join
from ..edition.compose import ComposedMessage

Result = TypeVar("Result")


def run_deliveries(deliveries: Coroutine[Any, Any, Result]) -> Result:
    """Run a delivery coroutine to the end on a new event loop: uvloop's where it is installed (uvicorn's standard
    extras bring it; on Linux), else asyncio's own. A send on loopback is bound by the loop's own CPU time, and
    uvloop's loop and socket transports cut it by 10-15% (benchmarks/send.py)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(deliveries)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(deliveries)


class Transport(ABC):
    """Where messages go. Open once, send many, close; usable as `async with`."""

    where: str = "transport"  # shown in the send plan and in error messages

    async def open(self) -> None:  # noqa: B027 (optional: files and memory need no opening)
        """Make the transport ready (connect, log in); raises ConnectionFailed or SetupFailed."""

    @abstractmethod
    async def send(self, message: ComposedMessage) -> str:
        """Deliver one message; returns the receiver's acceptance (the server's reply, the file name)."""

    async def close(self) -> None:  # noqa: B027 (optional)
        """Release the transport; safe to call twice, and after a failure."""

    @property
    def is_open(self) -> bool:
        return True

    async def __aenter__(self) -> Transport:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None):
        await self.close()


EXPORT_FILE = re.compile(r"\d{5,}-[A-Za-z0-9._@+-]{1,100}\.eml")


def export_file_name(index: int, email: str) -> str:
    """`00001-alice@example.org.eml`: sortable, readable, and made only of characters safe in any file system."""
    return f"{index:05d}-{re.sub(r'[^A-Za-z0-9._@+-]', '_', email)[:100]}.eml"


class FileTransport(Transport):
    """One .eml file per message in a folder, numbered in sending order; the reply is the file's name."""

    def __init__(self, folder: Path, durable: bool = False) -> None:
        self.folder = folder
        self.where = str(folder)
        self.durable = durable
        self.count = 0

    async def send(self, message: ComposedMessage) -> str:
        self.count += 1
        name = export_file_name(self.count, message.recipient.email)
        atomic_write(safe_join(self.folder, name), message.data, durable=self.durable, private=True)
        return name


class MemoryTransport(Transport):
    """Keeps messages in a list: for tests and for library users who hand the bytes on themselves.

    `fail` maps an address to the errors its next sends raise, one per attempt, to exercise the send loop."""

    def __init__(self, fail: Mapping[str, list[DeliveryError]] | None = None) -> None:
        self.where = "memory"
        self.sent: list[ComposedMessage] = []
        self.fail = {address: list(errors) for address, errors in (fail or {}).items()}
        self.opened = 0
        self._open = False

    async def open(self) -> None:
        self.opened += 1
        self._open = True

    async def send(self, message: ComposedMessage) -> str:
        errors = self.fail.get(message.recipient.email)
        if errors:
            raise errors.pop(0)
        self.sent.append(message)
        return f"250 stored as message {len(self.sent)}"

    async def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open


TransportFactory = Callable[[], Transport]


def transport_for(root: Path | None, sender: str, verbose: bool = False) -> tuple[TransportFactory, str]:
    """The configured network transport: a factory of connections, and where they go (for the plan).

    Today that is SMTP (SMTP_HOST and friends); an HTTP API transport would add its settings and a branch here."""
    settings = require_smtp_settings(root)
    return _smtp_factory(settings, sender, verbose), f"{settings.host}:{settings.port}"


def _smtp_factory(settings: SMTPSettings, sender: str, verbose: bool) -> TransportFactory:
    from .smtp import SMTPTransport  # only a real send loads the network code

    return lambda: SMTPTransport(settings, sender, verbose)
