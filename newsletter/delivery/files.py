"""The files transport: one .eml file per message in a folder, numbered in sending order. `export` writes
through it, so a dry run takes the same path as a send; as NEWSLETTER_TRANSPORT=files it spools a send into
NEWSLETTER_OUTBOX for another program to pick up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ..base.errors import ConfigError
from ..base.writer import atomic_write, safe_join
from ..edition.compose import ComposedMessage
from .transport import Transport, TransportFactory

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


def from_settings(settings: Mapping[str, str], sender: str, verbose: bool = False) -> tuple[TransportFactory, str]:
    folder = settings.get("NEWSLETTER_OUTBOX", "").strip()
    if not folder:
        raise ConfigError("NEWSLETTER_OUTBOX: the folder the files transport writes into must be set")
    transport = FileTransport(Path(folder), durable=True)  # one numbering for every lane
    return lambda: transport, folder
