"""A local SMTP capture server (aiosmtpd) that stores what it receives as .eml files.

`newsletter smtp-capture` runs it for trying things out, and the tests run the very same handler, so what a
developer sees locally is what the tests check. aiosmtpd is an optional dependency: `pip install
'newsletter[capture]'` (the test extras include it).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base.errors import ConfigError
from ..base.ports import ensure_free
from ..base.writer import atomic_write


@dataclass(frozen=True)
class Received:
    """One message as the server got it: envelope and the exact bytes after DATA."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: tuple = ()
    at: float = 0.0  # arrival time (time.time()), for rate checks


class CaptureHandler:
    """aiosmtpd handler: keeps every message in memory and, with a folder, writes it there as an .eml file."""

    def __init__(self, folder: Path | None = None, pipelining: bool = True) -> None:
        self.folder = folder
        self.pipelining = pipelining
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]):
        """Offer PIPELINING like Postfix does (aiosmtpd reads pipelined commands in order anyway)."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._lock:
            self.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), data, tuple(session.peer), time.time())
            )
            number = next(self._numbers)
        if self.folder is None:
            return "250 2.0.0 OK"
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{number:05d}.eml"
        atomic_write(self.folder / name, data, durable=False)
        return f"250 2.0.0 OK stored as {name}"


def capture_controller(handler: Any, host: str = "127.0.0.1", port: int = 1025, **smtp_options: Any):
    """An aiosmtpd Controller around `handler` (not yet started); `smtp_options` go to aiosmtpd's SMTP."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        raise ConfigError("smtp-capture needs aiosmtpd: pip install 'newsletter[capture]'") from None
    return Controller(handler, hostname=host, port=port, **smtp_options)


def run_capture(port: int, folder: Path, host: str = "127.0.0.1") -> None:
    """Serve until interrupted, storing messages in `folder`."""
    ensure_free(host, port)
    folder.mkdir(parents=True, exist_ok=True)
    controller = capture_controller(CaptureHandler(folder), host, port)
    controller.start()
    print(f"smtp-capture: listening on {host}:{port}, storing messages in {folder}/ (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()
