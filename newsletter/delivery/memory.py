"""The memory transport: messages kept in a list, for tests and for library users who hand the bytes on
themselves."""

from __future__ import annotations

from collections.abc import Mapping

from ..base.errors import DeliveryError
from ..edition.compose import ComposedMessage
from .transport import Transport, TransportFactory


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


def from_settings(settings: Mapping[str, str], sender: str, verbose: bool = False) -> tuple[TransportFactory, str]:
    transport = MemoryTransport()  # every lane adds to the one list
    return lambda: transport, "memory"
