"""A deadline for every HTTP request `serve` reads: a whole request within so many seconds, or the connection
goes.

uvicorn closes a connection that stays idle after an answer (its keep-alive timeout), but not one that never
finishes a request: a client that opens a connection and sends nothing, or sends its headers a byte at a time
(slowloris), holds a socket and a file descriptor for as long as it likes, and a few thousand of them exhaust
the server. This protocol starts a clock when a connection opens and again after each answer, stops it when a
request has arrived whole, and closes the connection when it runs out.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def deadline_protocol(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a request deadline of `seconds`."""
    return type("DeadlineProtocol", (RequestDeadline,), {"request_timeout": seconds})


class RequestDeadline(HttpToolsProtocol):
    request_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
