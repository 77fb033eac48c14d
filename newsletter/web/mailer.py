"""The task inside `serve` that empties the outbox: confirmation and welcome mails, handed to the configured
transport (SMTP by default) as soon as a sign-up asks, and retried with a doubling delay while the relay is
down or refuses for now (`audience.outbox`). Without a transport configured, sign-ups are still recorded and
their mails wait; `serve` says so when it starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..audience.outbox import Letter, Outbox
from ..audience.tokens import confirm_token, required_keys
from ..base.errors import ConfigError, DeliveryError, PermanentFailure, SetupFailed
from ..base.model import Publication, Recipient
from ..base.workspace import Workspace
from ..delivery.notices import Notices
from ..delivery.transport import Transport, transport_for
from .http import patiently

log = logging.getLogger("newsletter.serve")
POLL = 5.0  # seconds between looks at the outbox when nothing wakes the task (retries come due)


def confirm_link(publication: Publication, keys: list[bytes], email: str, queued: float) -> str:
    """The link of the confirmation mail of a sign-up made at `queued`."""
    return f"{publication.site_url}/confirm/{confirm_token(keys, publication.list_id, email, queued)}"


class Mailer:
    def __init__(self, workspace: Workspace, outbox: Outbox, wake: asyncio.Event | None = None,
                 command: str = "serve") -> None:  # fmt: skip
        """`wake` is set when a mail is queued (`serve`); the command line calls `send_due` once instead."""
        self.publication = workspace.publication
        self.keys = required_keys(self.publication.unsubscribe_secret, command)
        self.outbox, self.wake = outbox, wake or asyncio.Event()
        self.notices = Notices(workspace)
        self.notices.check(f"{self.publication.site_url}/confirm/sample")  # a broken template stops serve now
        self.connect, self.why_not = None, ""  # why not: what keeps mails from going out
        try:
            if not self.publication.site_url:
                raise ConfigError("[publication] site_url is not set: a confirmation link needs it")
            self.connect, _ = transport_for(workspace.settings, self.notices.sender)
        except ConfigError as error:
            self.why_not = error.message
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        if self.connect is None:
            log.warning("sign-ups are recorded, but their confirmation mails wait until this is fixed: %s",
                        self.why_not)  # fmt: skip
        else:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        await patiently(self.outbox.restart)  # mails a kill interrupted mid-handover go again
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL)
            self.wake.clear()
            try:
                await self.send_due()
            except Exception:  # a store or template problem must not end the task: it tries again later
                log.exception("could not empty the outbox")

    async def send_due(self) -> int:
        """Hand every mail that is due to the transport, once; returns how many the relay took."""
        letters = await patiently(self.outbox.due, time.time())
        if not letters:
            return 0
        transport: Transport = self.connect()
        try:
            return sum([await self._send(transport, letter) for letter in letters])
        finally:
            await transport.close()

    async def _send(self, transport: Transport, letter: Letter) -> bool:
        link = (confirm_link(self.publication, self.keys, letter.address, letter.queued) if letter.kind == "confirm"
                else self._archive())  # fmt: skip
        message = self.notices.compose(letter.kind, Recipient(letter.address, letter.name), link, letter.message_id)
        if not letter.message_id:
            await patiently(self.outbox.remember_id, letter, message.message_id)
        try:
            if not transport.is_open:
                await transport.open()
            await transport.send(message)
        except PermanentFailure as error:
            await patiently(self.outbox.failed, letter, str(error))
            log.warning("a %s mail was refused for good: %s", letter.kind, error.message)
        except (DeliveryError, SetupFailed, OSError) as error:
            await patiently(self.outbox.retry, letter, str(error), time.time())
            log.warning("a %s mail waits to be retried: %s", letter.kind, error)
            await transport.close()
        else:
            await patiently(self.outbox.handed, letter, time.time())
            return True
        return False

    def _archive(self) -> str:
        return f"{self.publication.site_url}/" if self.publication.site_url else self.publication.website_url
