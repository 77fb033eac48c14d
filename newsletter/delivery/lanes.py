"""One run of a send, in named parts on one event loop.

- `Lane`: one connection. It claims a recipient, delivers the message, and hands the outcome to the recorder,
  at its own server's pace: a slow or hung connection holds up only itself.
- `Recorder`: the journal's side. Each lane's turn (the outcome it finished, and whether it wants another
  recipient) goes into a group commit (`groupcommit`): turns that arrive together share one transaction, and a
  lane's message goes out only after its recipient is durably `sending`.
- `SuppressionWatcher`: every few seconds, whoever unsubscribed or bounced since the run began is skipped.
- `Run`: the conductor. It starts the lanes, paces them (`policy.Throttle`), stops them (Ctrl-C, too many
  failures, a setting that cannot work), and shows progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..audience.exclusions import Exclusions
from ..base.errors import DeliveryError, NewsletterError, SetupFailed
from ..base.workspace import Workspace
from ..edition.compose import MessageFactory
from .groupcommit import GroupCommit
from .journal import Claim, Journal, Outcome, State, Step, Wait
from .policy import FailureWatch, SendOptions, Throttle
from .report import Progress, SendReport, StopReason
from .transport import Transport, TransportFactory


class Sending(Protocol):
    """What a run needs of the send it belongs to (`send.Send`)."""

    options: SendOptions
    factory: MessageFactory
    workspace: Workspace
    exclusions: Exclusions
    return_path: Callable[[int], str] | None
    new_transport: TransportFactory


SUPPRESSION_POLL_SECONDS = 2.0


class Recorder:
    """Records outcomes and claims recipients, through one group commit shared by every lane."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.commits = GroupCommit(run.journal.advance)  # each step is answered once it is on disk
        self.claims = 0  # this run's claims, for --limit
        self.exhausted = False  # a claim found nobody left

    async def turn(self, finished: tuple[Claim, Outcome] | None, claim_next: bool) -> Claim | Wait | None:
        """Record `finished` (if any) and, if asked, claim the next recipient: a Claim, a Wait (a rate limit or
        every pending recipient waiting out a retry delay), or None (nobody is left, or none was asked)."""
        limit = self.run.options.limit
        claim_next = claim_next and (limit is None or self.claims < limit)
        self.claims += claim_next
        try:
            answer = await self.commits.submit(Step(*(finished or (None, None)), claim_next=claim_next))
        except NewsletterError as error:  # nothing more can be recorded safely; unrecorded rows stay `sending`
            self.run.halt(StopReason.JOURNAL, str(error))
            return None
        if finished is not None:
            self.run.count(*finished)
        if not isinstance(answer, Claim):
            self.claims -= claim_next  # the reserved claim was not used
            self.exhausted |= claim_next and answer is None
        return answer


@dataclasses.dataclass
class Lane:
    """One connection of a run: claims, delivers and records, at its own server's pace."""

    run: Run
    index: int
    transport: Transport | None = None
    finished: tuple[Claim, Outcome] | None = None  # recorded by the lane's next turn
    reconnects: int = 0  # consecutive connection failures or slow-down replies, for the backoff
    not_before: float = 0.0  # time.monotonic() before which it does not connect again (after a slow-down)

    @property
    def connected(self) -> bool:
        return self.transport is not None and self.transport.is_open

    async def work(self) -> None:
        run = self.run
        try:
            while not run.stopping.is_set():
                parked = self.index >= run.throttle.allowed  # the server asked for fewer connections
                if (parked or not self.connected) and run.recorder.exhausted and self.finished is None:
                    break  # nothing left that this lane could take
                if parked:
                    await self.park()
                elif not self.connected:
                    await self.connect()
                elif not await self.take_next():
                    break
            await self.record()
        finally:
            if self.transport is not None:
                await self.transport.close()

    async def take_next(self) -> bool:
        """Claim a recipient and deliver to it (or wait, when told to); False when nobody is left."""
        finished, self.finished = self.finished, None
        answer = await self.run.recorder.turn(finished, claim_next=True)
        if answer is None:
            return False
        if isinstance(answer, Wait):
            await self.run.pause(answer.seconds)
        else:
            self.finished = (answer, await self.deliver(answer))
        return True

    async def record(self) -> None:
        """Record what this lane finished, claiming nothing."""
        if self.finished is not None:
            finished, self.finished = self.finished, None
            await self.run.recorder.turn(finished, claim_next=False)

    async def park(self) -> None:
        """Record what this lane finished, hang up, and wait until the throttle lets it work again."""
        await self.record()
        if self.transport is not None:
            await self.transport.close()
            self.transport = None
        await self.run.pause(1.0)

    async def connect(self) -> None:
        """Open the connection; a failure charges no recipient, is shown at once, and backs off."""
        run = self.run
        await self.record()  # the connection broke after a message: record it before anything else
        await run.pause(self.not_before - time.monotonic())
        self.transport = self.transport or run.send.new_transport()
        try:
            await self.transport.open()
        except DeliveryError as error:
            if isinstance(error, SetupFailed):  # wrong password, untrusted certificate: retrying will not help
                run.halt(StopReason.SETUP, str(error))
                return
            self.reconnects += 1
            if error.slow_down:
                run.slow_down(error)
            run.failed(str(error))
            run.note(f"{error}; retrying")
            await run.pause(run.retry.backoff(self.reconnects))

    async def deliver(self, claim: Claim) -> Outcome:
        send = self.run.send
        message = send.factory.compose(claim.recipient)
        if send.return_path is not None:
            message = dataclasses.replace(message, envelope_from=send.return_path(claim.id))
        try:
            reply = await self.transport.send(message)
        except DeliveryError as error:
            if error.slow_down:  # this lane waits before it tries again, and the run uses fewer lanes
                self.reconnects += 1
                self.not_before = time.monotonic() + self.run.retry.backoff(self.reconnects)
                self.run.slow_down(error)
            return self.run.retry.outcome(error, claim.attempts)
        self.reconnects = 0
        return Outcome(State.SENT, reply)


class SuppressionWatcher:
    """Asks the suppression store every few seconds who was added since: someone who unsubscribes while the send
    runs (one-click, a bounce) is skipped from then on, not mailed minutes later, even when already read into the
    window. It asks the journal to skip them; the journal keeps its own records and window."""

    def __init__(self, run: Run) -> None:
        self.run = run

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(SUPPRESSION_POLL_SECONDS)
            try:
                self.run.journal.skip(self.run.send.exclusions.added())
            except NewsletterError as error:
                self.run.note(f"could not read the suppression list: {error}")


class Run:
    """One run: N lanes on one event loop, the recorder they share, and the policies that pace them."""

    def __init__(self, send: Sending, journal: Journal, report: SendReport,
                 on_progress: Callable[[Progress], None] | None) -> None:  # fmt: skip
        self.send = send
        self.options = send.options
        self.journal = journal
        self.report = report
        self.progress = report.progress
        self.skipped_before = report.progress.skipped
        self.on_progress = on_progress
        self.retry = self.options.retry_policy()
        self.throttle = Throttle(max(1, self.options.connections))
        self.watch = FailureWatch(self.options.max_consecutive_failures, self.options.give_up_after)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = asyncio.Event()
        self.recorder: Recorder | None = None

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.recorder = Recorder(self)
        lanes = [asyncio.create_task(Lane(self, index).work()) for index in range(self.throttle.maximum)]
        ticker = asyncio.create_task(self._tick())
        watcher = asyncio.create_task(SuppressionWatcher(self).watch())
        try:
            with self._ctrl_c(lanes):
                await asyncio.gather(*lanes, return_exceptions=True)
            for lane in lanes:
                if not lane.cancelled() and lane.exception() is not None:
                    raise lane.exception()
        finally:
            ticker.cancel()
            watcher.cancel()
            self.show()

    # --- stopping ---------------------------------------------------------------------------------------------

    def halt(self, reason: StopReason, detail: str = "") -> None:
        """Stop claiming recipients; messages in flight finish. The first reason is reported."""
        if self.report.stop is None:
            self.report.stop, self.report.stop_detail = reason, detail
        self.stopping.set()

    def halt_threadsafe(self, reason: StopReason) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.halt, reason)

    @contextlib.contextmanager
    def _ctrl_c(self, lanes: list[asyncio.Task]):
        """On the main thread: the first Ctrl-C halts the run, the second cancels the lanes at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        presses = 0

        def pressed() -> None:
            nonlocal presses
            presses += 1
            self.halt(StopReason.INTERRUPTED)
            if presses > 1:
                self.report.notes.append("stopped at once: the messages that were on their way are now in doubt")
                for lane in lanes:
                    lane.cancel()

        self.loop.add_signal_handler(signal.SIGINT, pressed)
        try:
            yield
        finally:
            self.loop.remove_signal_handler(signal.SIGINT)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the run is halted."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.stopping.wait()

    # --- the policies -----------------------------------------------------------------------------------------

    def slow_down(self, error: DeliveryError) -> None:
        if self.throttle.slow_down(time.monotonic()):
            self.note(f"the server asked to slow down ({error}); {self.throttle.allowed} connection(s) for now")

    def count(self, claim: Claim, outcome: Outcome) -> None:
        """Count a recorded outcome: progress, the failure watch, and the throttle's recovery."""
        progress = self.progress
        if outcome.state == State.SENT:
            progress.sent += 1
            progress.sent_this_run += 1
            self.watch.delivered()
            if self.throttle.delivered(time.monotonic()):
                self.note(f"back to {self.throttle.allowed} connection(s)" if self.throttle.throttled else "")
            return
        progress.failed += outcome.state == State.FAILED
        progress.in_doubt += outcome.state == State.IN_DOUBT
        self.failed(outcome.reply)

    def failed(self, reason: str) -> None:
        stop = self.watch.failed(time.monotonic(), reason)
        if stop:
            self.halt(StopReason.FAILING, stop)

    # --- what the user sees -----------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.progress.note = text
        self.show()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.show()

    def show(self) -> None:
        self.progress.connections_allowed = self.throttle.allowed
        self.progress.skipped = self.skipped_before + self.journal.skipped
        self.progress.total = self.journal.total()
        if self.on_progress:
            self.on_progress(self.progress)
