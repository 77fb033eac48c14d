"""The handler transport: a function decides what becomes of each message, as httpx's MockTransport does for
requests. It is the send loop's test double: one function stands in for a mail server that accepts, refuses
(raise `PermanentFailure`), defers (`TemporaryFailure`), loses a message after the dot (`OutcomeUnknown`), drops
the connection (`ConnectionFailed`) or takes its time (`await asyncio.sleep`), without a socket.

    def handler(message):                      # or `async def`
        if message.recipient.email == "full@example.org":
            raise TemporaryFailure("452 4.2.2 mailbox full", code=452)
        return "250 OK"

    Send(edition, recipients, root, transport=lambda: HandlerTransport(handler))
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping

from ..base.errors import ConfigError, ConnectionFailed
from ..edition.compose import ComposedMessage
from .transport import Transport, TransportFactory

Handler = Callable[[ComposedMessage], "str | Awaitable[str]"]


class HandlerTransport(Transport):
    """Each `send` is `handler(message)`: its return value is the reply, what it raises is the failure.
    `connect`, when given, runs at every `open` (raise ConnectionFailed there for a server that is down)."""

    def __init__(self, handler: Handler, connect: Callable[[], None] | None = None, where: str = "handler") -> None:
        self.handler = handler
        self.connect = connect
        self.where = where
        self.opened = 0
        self._open = False

    async def open(self) -> None:
        self.opened += 1
        if self.connect is not None:
            self.connect()
        self._open = True

    async def send(self, message: ComposedMessage) -> str:
        if not self._open:
            raise ConnectionFailed(f"{self.where}: not connected")
        reply = self.handler(message)
        if inspect.isawaitable(reply):
            reply = await reply
        return reply

    async def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open


def from_settings(settings: Mapping[str, str], sender: str, verbose: bool = False) -> TransportFactory:
    raise ConfigError("NEWSLETTER_TRANSPORT=handler is a test double: a library caller constructs HandlerTransport "
                      "with the function that answers each message")  # fmt: skip
