"""Stage 6, deliver: one small interface between a composed message and wherever it goes.

A `Transport` opens, sends one composed message at a time, and closes. `send`, `send-test` and `export` all
deliver through it, so a dry run to files takes the same path as a real send. Failures are transport-neutral
(`errors.TemporaryFailure`, `PermanentFailure`, `OutcomeUnknown`, `ConnectionFailed`, `SetupFailed`): the send
loop decides what they mean for a recipient without knowing whether SMTP, files or an HTTP API is behind them.

The interface is asynchronous because one process drives many connections at once, each at its own server's
pace (see `send`). Files and memory never wait, so for them `await` costs next to nothing.

Implementations, each a module of this package named in TRANSPORTS: `smtp`, `files`, `memory` and `handler` (a
function decides each reply, for tests). Another one (an ESP's HTTP batch API) is a new module plus one line
there.
"""

from __future__ import annotations

import asyncio
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from ..base.errors import ConfigError
from ..edition.compose import ComposedMessage

Result = TypeVar("Result")


def run_deliveries(deliveries: Coroutine[Any, Any, Result]) -> Result:
    """Run a delivery coroutine to the end on a new event loop: uvloop's where it is installed (uvicorn's standard
    extras bring it; on Linux), else asyncio's own. A send on loopback is bound by the loop's own CPU time, and
    uvloop's loop and socket transports cut it (docs/benchmarks.md)."""
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


TransportFactory = Callable[[], Transport]

# The NEWSLETTER_TRANSPORT setting -> the module of this package that delivers that way. A new delivery service
# (an ESP's HTTP API, say) is a module with a Transport and `from_settings`, plus one line here.
TRANSPORTS = {
    "smtp": "smtp",  # an SMTP relay: SMTP_HOST, SMTP_PORT, ... (the default)
    "files": "files",  # one .eml per message into NEWSLETTER_OUTBOX: a spool another program sends from
    "memory": "memory",  # kept in a list, for library users who hand the bytes on themselves
    "handler": "handler",  # a function decides each reply: the test double of the send loop
}


def transport_for(settings: Mapping[str, str], sender: str, verbose: bool = False) -> tuple[TransportFactory, str]:
    """The transport NEWSLETTER_TRANSPORT names (SMTP by default): a factory of connections, and where they go.

    The module is imported by name, when asked for: a build or an export never loads the network code."""
    name = settings.get("NEWSLETTER_TRANSPORT", "").strip().lower() or "smtp"
    if name not in TRANSPORTS:
        raise ConfigError(f"NEWSLETTER_TRANSPORT: unknown transport {name!r} (one of {', '.join(TRANSPORTS)})")
    module = importlib.import_module(f"{__package__}.{TRANSPORTS[name]}")
    return module.from_settings(settings, sender, verbose)
