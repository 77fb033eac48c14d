"""`newsletter send`: the edition to every subscriber, exactly once, resumable, rate-limited, over N connections.

One process, one thread, one asyncio event loop. Each connection is a lane of its own:

    connect (once) -> [record the last outcome + claim the next recipient] -> compose -> send -> repeat

and no lane ever waits for another's server: a relay that answers each message after a varying delay (scanning,
queueing) keeps every connection busy at its own pace, and one connection that hangs holds up only itself, until
SMTP_TIMEOUT. The bracketed step is a journal commit (the recipient is durably `sending` before its MAIL);
commits are shared: the steps of every lane whose reply arrived in the same turn of the loop go into one
transaction (group commit).

Ctrl-C: the first press stops claiming, lets the messages on their way finish and records them; a second press
stops at once (those recipients are then in doubt). A server that asks to slow down (421, 4.7.x) gets fewer
connections for a while (`policy.Throttle`); one that cannot be reached stops the run after `give_up_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..audience.recipients import suppressed_addresses
from ..audience.tokens import required_keys, unsubscribe_keys, verp_tag
from ..base.addresses import mailbox_key, parse_mailbox
from ..base.errors import ConfigError, DeliveryError, NewsletterError, SetupFailed
from ..base.model import Publication
from ..base.workspace import Workspace
from ..edition.pipeline import prepare_for_recipients
from .groupcommit import GroupCommit
from .journal import Claim, Journal, JournalReader, JournalStore, Outcome, RateLimit, State, Step, journal_path
from .policy import FailureWatch, RetryPolicy, Throttle
from .transport import Transport, TransportFactory, run_deliveries, transport_for

SUPPRESSION_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class SendOptions:
    connections: int = 1
    rate: float | None = None  # messages per second
    per_hour: int | None = None
    resend_in_doubt: bool = False
    max_consecutive_failures: int = 20
    max_attempts: int = 5
    retry_delay: float = 1.0  # first backoff; doubles per consecutive temporary failure
    max_retry_delay: float = 60.0
    give_up_after: float = 60.0  # stop when every attempt has failed for this long (server unreachable)
    limit: int | None = None  # send at most this many messages in this run (warming up a new sender)
    verbose: bool = False

    def __post_init__(self) -> None:
        """Library callers get the same refusals as the command line: before anything is created."""
        for name in ("connections", "rate", "per_hour", "retry_delay", "give_up_after", "limit"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"send option {name} must be a positive number, got {value!r}")

    def limits(self) -> tuple[RateLimit, ...]:
        limits = []
        if self.rate:
            count = max(1, int(self.rate))
            limits.append(RateLimit(count, count / self.rate))
        if self.per_hour:
            limits.append(RateLimit(self.per_hour, 3600.0))
        return tuple(limits)

    def describe_rate(self) -> str:
        parts = ([f"{self.rate:g}/s"] if self.rate else []) + ([f"{self.per_hour}/hour"] if self.per_hour else [])
        return " and ".join(parts) or "unlimited"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_delay, self.max_retry_delay)


@dataclass
class Progress:
    """Counts for the progress line and the summary; `done` includes what earlier runs finished.

    `note` is the latest thing the user should know while it runs (a connection problem, a slow-down)."""

    total: int
    sent: int = 0
    failed: int = 0
    in_doubt: int = 0
    skipped: int = 0
    sent_this_run: int = 0
    connections: int = 1
    connections_allowed: int = 1
    note: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.in_doubt + self.skipped

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent_this_run / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass
class SendReport:
    """How a run ended: the counts, why it stopped early ('' when it did not), and notes for the user.

    `fatal` says running again as is will not help (the settings must change first)."""

    progress: Progress
    stop_reason: str = ""
    fatal: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.stop_reason and self.progress.done == self.progress.total

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


@dataclass(frozen=True)
class SendPlan:
    """What a run would do: how many recipients it would send to, and how many it would not, and why."""

    edition: str
    subject: str
    total: int
    to_send: int
    pending: int  # not yet sent to: those to send, and those who have left the list since the send started
    suppressed: int  # on the list but unsubscribed, bounced or complained: never sent to
    sent: int  # already sent by an earlier run
    failed: int
    in_doubt: int
    host: str
    rate: str
    connections: int
    journal: Path
    resuming: bool


def _return_path(publication: Publication, edition: str) -> Callable[[int], str] | None:
    """With `bounce_address`, the VERP return path of each journal row: bounces+TAG@domain, so that a bounce
    names its recipient even when the remote server's report leaves the original message out."""
    if not publication.bounce_address:
        return None
    local, _, domain = parse_mailbox(publication.bounce_address, "bounce_address").addr_spec.rpartition("@")
    keys = unsubscribe_keys(publication.unsubscribe_secret)
    return lambda row_id: f"{local}+{verp_tag(keys, publication.list_id, edition, row_id)}@{domain}"


def recipients_fingerprint(rows: list[tuple]) -> str:
    digest = hashlib.sha256()
    for recipient, _ in rows:
        digest.update(f"{recipient.email}\0{recipient.name}\0{sorted(recipient.fields.items())}\0".encode())
    return digest.hexdigest()


class Send:
    """A prepared send: everything loaded and checked, nothing written and no connection opened until `run`."""

    def __init__(self, edition: str | Path, recipients_csv: Path, workspace: Workspace,
                 options: SendOptions | None = None, transport: TransportFactory | None = None) -> None:  # fmt: skip
        """`transport` makes one connection per lane; by default the configured SMTP server's."""
        self.workspace = workspace
        self.options = options or SendOptions()
        self.factory, recipients = prepare_for_recipients(edition, recipients_csv, workspace, apply_suppression=False)
        self.problems = recipients.problems
        publication = self.factory.rendered.publication
        required_keys(publication.unsubscribe_secret, "send")
        if transport is None:
            transport, self.where = transport_for(
                workspace.settings, self.factory.sender.addr_spec, self.options.verbose
            )
        else:
            self.where = transport().where
        self.new_transport = transport
        self.return_path = _return_path(publication, self.factory.rendered.edition.name)
        self.suppressed = suppressed_addresses(workspace)
        self._rows = [(r, self.factory.message_id(r)) for r in recipients.recipients]
        self._prints = (self.factory.fingerprint(), recipients_fingerprint(self._rows))
        self._recipients_csv = recipients_csv
        self.path = journal_path(workspace.root, self.factory.rendered.edition.name)
        self.total = len(self._rows)
        self._counts: dict[str, int] = {}
        self.resuming = False
        if self.path.exists():  # only read: declining the plan must leave no trace
            with JournalReader(self.path) as reader:
                self.resuming = reader.check_same_send(*self._prints, recipients_csv)
                self._counts = reader.counts()
        self._store: JournalStore | None = None
        self._runner: _Runner | None = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def counts(self) -> dict[str, int]:
        """Recipients per journal state, as of the last look (the start, or the end of `run`)."""
        return dict(self._counts)

    def plan(self) -> SendPlan:
        """What `run` would do; nothing is written until then, so declining leaves no journal at all."""
        counts = self._counts
        if self.resuming:
            with JournalReader(self.path) as reader:
                waiting = [mailbox_key(email) for email in reader.pending_emails()]
            in_doubt = counts.get("in-doubt", 0) if self.options.resend_in_doubt else 0
        else:
            waiting, in_doubt = [mailbox_key(r.email) for r, _ in self._rows], 0
        newly_suppressed = sum(key in self.suppressed for key in waiting)
        return SendPlan(
            self.factory.rendered.edition.name, self.factory.subject, self.total,
            to_send=len(waiting) - newly_suppressed + in_doubt, pending=len(waiting) + in_doubt,
            suppressed=counts.get("skipped", 0) + newly_suppressed,
            sent=counts.get("sent", 0), failed=counts.get("failed", 0), in_doubt=counts.get("in-doubt", 0),
            host=self.where, rate=self.options.describe_rate(), connections=self.options.connections,
            journal=self.path, resuming=self.resuming,
        )  # fmt: skip

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> SendReport:
        """Send to every pending recipient, then report. Ctrl-C ends it early with stop_reason 'interrupted'."""
        store = self._open_store()
        recovered = store.recover()
        if self.options.resend_in_doubt:
            store.release_in_doubt()
        store.skip_suppressed(self.suppressed)
        journal = Journal(store, self._rows, self.options.limits())
        counts = store.counts()
        connections = self.options.connections
        progress = Progress(self.total, counts["sent"], counts["failed"], counts["in-doubt"], counts["skipped"],
                            connections=connections, connections_allowed=connections)  # fmt: skip
        report = SendReport(progress)
        if recovered and not self.options.resend_in_doubt:
            report.notes.append(
                f"{recovered} recipient(s) were caught mid-send by an interrupted run and are in doubt: not re-sent "
                "(see `newsletter status`; --resend-in-doubt sends them again)"
            )
        self._runner = _Runner(self, journal, report, on_progress)
        try:
            run_deliveries(self._runner.run())
        finally:
            self._counts = store.counts()
        return report

    def _open_store(self) -> JournalStore:
        """Create the journal (or open it again), checking once more that it holds this very send."""
        if self._store is None:
            store = JournalStore(self.path)
            try:
                if not store.check_same_send(*self._prints, self._recipients_csv):
                    store.start(*self._prints, self._rows, self._recipients_csv)
            except BaseException:
                store.close()
                raise
            self._store = store
            self.resuming = True
        return self._store

    def stop(self) -> None:
        """Ask a running `run` (in another thread) to finish the messages in flight and return."""
        if self._runner is not None:
            self._runner.halt_threadsafe("stopped on request")


@dataclass
class _Lane:
    """One connection of a run."""

    index: int
    transport: Transport | None = None
    finished: tuple[Claim, Outcome] | None = None  # recorded by the lane's next commit
    reconnects: int = 0  # consecutive connection failures or slow-down replies, for the backoff
    not_before: float = 0.0  # time.monotonic() before which it does not connect again (after a slow-down)


class _Runner:
    """One run: N lanes on one event loop, a shared group commit, and the policies that pace them."""

    def __init__(self, send: Send, journal: Journal, report: SendReport,
                 on_progress: Callable[[Progress], None] | None) -> None:  # fmt: skip
        self.send = send
        self.options = send.options
        self.journal = journal
        self.report = report
        self.progress = report.progress
        self.on_progress = on_progress
        self.retry = self.options.retry_policy()
        self.throttle = Throttle(max(1, self.options.connections))
        self.watch = FailureWatch(self.options.max_consecutive_failures, self.options.give_up_after)
        self.claims = 0  # this run's claims, for --limit
        self.exhausted = False  # a claim found nobody left
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    # --- stopping ---------------------------------------------------------------------------------------------

    def halt(self, reason: str, fatal: bool = False) -> None:
        """Stop claiming recipients; messages in flight finish. The first reason is reported."""
        if not self.report.stop_reason:
            self.report.stop_reason, self.report.fatal = reason, fatal
        self.stopping.set()

    def halt_threadsafe(self, reason: str) -> None:
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
            self.halt("interrupted")
            if presses > 1:
                self.report.notes.append("stopped at once: the messages that were on their way are now in doubt")
                for lane in lanes:
                    lane.cancel()

        self.loop.add_signal_handler(signal.SIGINT, pressed)
        try:
            yield
        finally:
            self.loop.remove_signal_handler(signal.SIGINT)

    # --- the run ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.commits = GroupCommit(self.journal.advance)  # each step is answered once it is on disk
        lanes = [asyncio.create_task(self._lane(_Lane(index))) for index in range(self.throttle.maximum)]
        ticker = asyncio.create_task(self._tick())
        watcher = asyncio.create_task(self._watch_suppressions())
        try:
            with self._ctrl_c(lanes):
                await asyncio.gather(*lanes, return_exceptions=True)
            for lane in lanes:
                if not lane.cancelled() and lane.exception() is not None:
                    raise lane.exception()
        finally:
            ticker.cancel()
            watcher.cancel()
            self._show()

    async def _lane(self, lane: _Lane) -> None:
        try:
            while not self.stopping.is_set():
                idle = lane.index >= self.throttle.allowed or lane.transport is None or not lane.transport.is_open
                if idle and self.exhausted and lane.finished is None:  # nothing left that this lane could take
                    break
                if lane.index >= self.throttle.allowed:  # the server asked for fewer connections
                    await self._park(lane)
                    continue
                if lane.transport is None or not lane.transport.is_open:
                    await self._connect(lane)
                    continue
                claim = await self._next(lane)
                if claim is None:
                    break
                if isinstance(claim, float):
                    await self._pause(claim)
                    continue
                lane.finished = (claim, await self._deliver(lane, claim))
            if lane.finished is not None:
                await self._next(lane, claim_next=False)
        finally:
            if lane.transport is not None:
                await lane.transport.close()

    async def _park(self, lane: _Lane) -> None:
        """Record what this lane finished, hang up, and wait until the throttle lets it work again."""
        if lane.finished is not None:
            await self._next(lane, claim_next=False)
        if lane.transport is not None:
            await lane.transport.close()
            lane.transport = None
        await self._pause(1.0)

    async def _connect(self, lane: _Lane) -> None:
        """Open the lane's connection; a failure charges no recipient, is shown at once, and backs off."""
        if lane.finished is not None:  # the connection broke after a message: record it before anything else
            await self._next(lane, claim_next=False)
        await self._pause(lane.not_before - time.monotonic())
        lane.transport = lane.transport or self.send.new_transport()
        try:
            await lane.transport.open()
        except DeliveryError as error:
            if isinstance(error, SetupFailed):  # wrong password, untrusted certificate: retrying will not help
                self.halt(str(error), fatal=True)
                return
            lane.reconnects += 1
            if error.slow_down:
                self._slow_down(error)
            self._failed(str(error))
            self._note(f"{error}; retrying")
            await self._pause(self.retry.backoff(lane.reconnects))
            return

    async def _next(self, lane: _Lane, claim_next: bool = True) -> Claim | float | None:
        """Record the lane's last outcome and, if asked, claim its next recipient: one (shared) commit."""
        if claim_next and self.options.limit is not None and self.claims >= self.options.limit:
            claim_next = False
        finished, lane.finished = lane.finished, None
        step = Step(*(finished or (None, None)), claim_next=claim_next)
        self.claims += claim_next
        try:
            answer = await self.commits.submit(step)
        except NewsletterError as error:  # nothing more can be recorded safely; unrecorded rows stay `sending`
            self.halt(str(error), fatal=True)
            return None
        if finished is not None:
            self._count(*finished)
        if not isinstance(answer, Claim):
            self.claims -= claim_next  # the reserved claim was not used
            self.exhausted |= claim_next and answer is None
        return answer

    async def _deliver(self, lane: _Lane, claim: Claim) -> Outcome:
        message = self.send.factory.compose(claim.recipient)
        if self.send.return_path is not None:
            message = dataclasses.replace(message, envelope_from=self.send.return_path(claim.id))
        try:
            reply = await lane.transport.send(message)
        except DeliveryError as error:
            if error.slow_down:  # this lane waits before it tries again, and the run uses fewer lanes
                lane.reconnects += 1
                lane.not_before = time.monotonic() + self.retry.backoff(lane.reconnects)
                self._slow_down(error)
            return self.retry.outcome(error, claim.attempts)
        lane.reconnects = 0
        return Outcome(State.SENT, reply)

    def _slow_down(self, error: DeliveryError) -> None:
        if self.throttle.slow_down(time.monotonic()):
            self._note(f"the server asked to slow down ({error}); {self.throttle.allowed} connection(s) for now")

    def _count(self, claim: Claim, outcome: Outcome) -> None:
        """Count a recorded outcome: progress, the failure watch, and the throttle's recovery."""
        progress = self.progress
        if outcome.state == State.SENT:
            progress.sent += 1
            progress.sent_this_run += 1
            self.watch.delivered()
            if self.throttle.delivered(time.monotonic()):
                self._note(f"back to {self.throttle.allowed} connection(s)" if self.throttle.throttled else "")
            return
        progress.failed += outcome.state == State.FAILED
        progress.in_doubt += outcome.state == State.IN_DOUBT
        self._failed(outcome.reply)

    def _failed(self, reason: str) -> None:
        stop = self.watch.failed(time.monotonic(), reason)
        if stop:
            self.halt(stop)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the run is halted."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.stopping.wait()

    # --- what the user sees -----------------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.progress.note = text
        self._show()

    async def _watch_suppressions(self) -> None:
        """Every few seconds, read the suppression store again: someone who unsubscribes while the send runs
        (one-click, a bounce) is skipped from then on, not mailed minutes later."""
        seen = self.send.suppressed
        while True:
            await asyncio.sleep(SUPPRESSION_POLL_SECONDS)
            try:
                current = suppressed_addresses(self.send.workspace)
                dropped = self.journal.store.skip_suppressed(current - seen) if current - seen else []
            except NewsletterError as error:
                self._note(f"could not read the suppression list: {error}")
                continue
            seen = current
            self.journal.queue.drop(dropped)
            self.progress.skipped += len(dropped)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self._show()

    def _show(self) -> None:
        self.progress.connections_allowed = self.throttle.allowed
        if self.on_progress:
            self.on_progress(self.progress)
