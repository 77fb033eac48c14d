"""`newsletter send`: the edition to every subscriber, exactly once, resumable, rate-limited, over N connections.

Each connection loops: claim the next recipient in the journal (durably `sending`), compose, MAIL / RCPT / DATA,
and record the checked outcome while claiming the next one in the same commit. Retries, backoff and the
consecutive-failure stop live here; durability and rate limits live in the journal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .compose import ComposedMessage
from .config import SMTPSettings, require_smtp_settings
from .errors import AuthenticationFailed, ConfigError, DeliveryError, NewsletterError
from .journal import Claim, Journal, Outcome, RateLimit, Step, fingerprint, journal_path
from .pipeline import prepare_for_recipients
from .recipients import suppressed_addresses
from .smtp import SMTPBackend


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
    limit: int | None = None  # send at most this many messages in this run (warming up a new sender)
    verbose: bool = False

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


@dataclass
class Progress:
    """Counts for the progress line and the summary; `done` includes what earlier runs finished."""

    total: int
    sent: int = 0
    failed: int = 0
    in_doubt: int = 0
    skipped: int = 0
    sent_this_run: int = 0
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
    """How a run ended: the counts, why it stopped early ('' when it did not), and notes for the user."""

    progress: Progress
    stop_reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.stop_reason and self.progress.done == self.progress.total


@dataclass(frozen=True)
class SendPlan:
    edition: str
    subject: str
    total: int
    pending: int
    host: str
    rate: str
    connections: int
    journal: Path
    resuming: bool


class Send:
    """A prepared send: everything loaded and checked, no connection opened until `run`."""

    def __init__(self, edition: str | Path, recipients_csv: Path, root: Path | None = None,
                 options: SendOptions | None = None) -> None:  # fmt: skip
        self.root = root or Path.cwd()
        self.options = options or SendOptions()
        self.settings: SMTPSettings = require_smtp_settings(self.root)
        self.factory, recipients = prepare_for_recipients(edition, recipients_csv, self.root, apply_suppression=False)
        self.problems = recipients.problems
        publication = self.factory.rendered.publication
        if not publication.unsubscribe_secret:
            raise ConfigError(
                "NEWSLETTER_UNSUBSCRIBE_SECRET must be set for `send`: it signs the unsubscribe links, so that your "
                "unsubscribe endpoint can verify them (see .env.example)"
            )
        self.suppressed = suppressed_addresses(publication, self.root)
        self._rows = [(r, self.factory.message_id(r)) for r in recipients.recipients]
        self._prints = (
            fingerprint([self.factory.rendered.html, self.factory.rendered.text, self.factory.subject,
                         self.factory.sender.addr_spec, publication.list_id]),
            fingerprint(f"{r.email}\0{r.name}\0{sorted(r.fields.items())}" for r, _ in self._rows),
        )  # fmt: skip
        self._recipients_csv = recipients_csv
        self.journal = Journal(journal_path(self.root, self.factory.rendered.edition.name))
        try:
            self.resuming = self.journal.check_same_send(*self._prints, recipients_csv)
        except BaseException:
            self.journal.close()
            raise
        self.total = len(self._rows)
        self._runner: _Runner | None = None

    def close(self) -> None:
        self.journal.close()

    def plan(self) -> SendPlan:
        """What `run` would do; nothing is written to the journal until then, so declining leaves no trace."""
        counts = self.journal.counts()
        pending = counts["pending"] + (counts["in-doubt"] if self.options.resend_in_doubt else 0)
        return SendPlan(
            self.factory.rendered.edition.name, self.factory.subject, self.total,
            pending if self.resuming else self.total, f"{self.settings.host}:{self.settings.port}",
            self.options.describe_rate(), self.options.connections, self.journal.path, self.resuming,
        )  # fmt: skip

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> SendReport:
        """Send to every pending recipient, then report; Ctrl-C finishes the messages in flight and re-raises."""
        if not self.resuming:
            self.journal.start(*self._prints, self._rows, self._recipients_csv)
            self.resuming = True
        recovered = self.journal.recover()
        if self.options.resend_in_doubt:
            self.journal.release_in_doubt()
        self.journal.skip_suppressed(self.suppressed)
        self.journal.prune_slots()
        self.journal.queue(self._rows)
        counts = self.journal.counts()
        progress = Progress(self.total, counts["sent"], counts["failed"], counts["in-doubt"], counts["skipped"])
        report = SendReport(progress)
        if recovered and not self.options.resend_in_doubt:
            report.notes.append(
                f"{recovered} recipient(s) were caught mid-send by an interrupted run and are in doubt: not re-sent "
                "(see `newsletter status`; --resend-in-doubt sends them again)"
            )
        self._runner = _Runner(self, report, on_progress)
        self._runner.run()
        return report

    def stop(self) -> None:
        """Ask a running `run` (in another thread) to finish the messages in flight and return."""
        if self._runner is not None:
            self._runner.halt("stopped on request")


@dataclass
class _Lane:
    """One SMTP connection of a run, and the recipient it carries in the current round."""

    backend: SMTPBackend | None = None
    claim: Claim | None = None
    data_started: bool = False  # the server said 354 and the message is going out: a lost reply means in doubt
    outcome: Outcome | None = None  # of `claim`, recorded by the next commit
    resume_at: float = 0.0  # time.monotonic() before which it claims nothing (backoff, rate limit)
    reconnects: int = 0  # consecutive connection failures, for the backoff
    finished: bool = False

    @property
    def in_flight(self) -> bool:
        return self.claim is not None and self.outcome is None

    def hang_up(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


class _Runner:
    """One run, in rounds: one journal commit, then one message on each of N connections, side by side.

    The commit records every connection's last outcome and claims each one's next recipient (group commit: the
    connections share one fsync). Then each connection writes its MAIL/RCPT/DATA, each its message, and each
    waits for its reply, so the server works on one connection's message while this process writes the next.
    One process, one thread: composing and SMTP framing cost less than the hand-offs that worker processes or
    threads would add (a worker process per connection used twice the CPU per message against smtp-sink; threads
    more still, in lock hand-offs), and a `kill -9` stops every connection at once.
    Ctrl-C finishes the round in flight and records it; a second Ctrl-C stops at once (those recipients are then
    in doubt).
    """

    def __init__(self, send: Send, report: SendReport, on_progress: Callable[[Progress], None] | None) -> None:
        self.send = send
        self.options = send.options
        self.report = report
        self.progress = report.progress
        self.on_progress = on_progress
        self.limits = self.options.limits()
        self.stop = threading.Event()  # set by halt(), from a signal handler or another thread
        self.consecutive_failures = 0
        self.claims = 0
        self.last_report = 0.0
        self.precomposed: dict[int, ComposedMessage] = {}  # by journal row id, see _precompose

    def halt(self, reason: str) -> None:
        """Stop claiming recipients; messages in flight finish. The first reason is reported."""
        self.report.stop_reason = self.report.stop_reason or reason
        self.stop.set()

    def run(self) -> None:
        lanes = [_Lane() for _ in range(max(1, self.options.connections))]
        try:
            with self._ctrl_c_halts():
                while not all(lane.finished for lane in lanes):
                    self._commit(lanes)
                    active = [lane for lane in lanes if lane.in_flight]
                    if active:
                        self._deliver(active)
                    elif not all(lane.finished for lane in lanes):
                        self._wait(lanes)
                    self._report_progress()
        finally:
            for lane in lanes:
                lane.hang_up()
            self._report_progress(force=True)
        if self.report.stop_reason == "interrupted":
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _ctrl_c_halts(self) -> Iterator[None]:
        """On the main thread, the first Ctrl-C halts the run; the next one raises KeyboardInterrupt as usual."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupted(signum: int, frame: object) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.halt("interrupted")

        previous = signal.signal(signal.SIGINT, interrupted)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _commit(self, lanes: list[_Lane]) -> None:
        """Record every outcome and claim the next recipients, in one durable commit."""
        now = time.monotonic()
        for lane in lanes:
            if self.stop.is_set() and not lane.in_flight and lane.outcome is None:
                lane.finished = True
        asking = [lane for lane in lanes if lane.outcome is not None or (not lane.finished and lane.resume_at <= now)]
        if not asking:
            return
        steps = []
        for lane in asking:
            ready = not lane.finished and lane.resume_at <= now and not self.stop.is_set()
            wants = ready and self._may_claim()
            if ready and not wants:  # this run's --limit is used up
                lane.finished = True
            steps.append(Step(lane.claim if lane.outcome else None, lane.outcome, wants))
        try:
            answers = self.send.journal.advance(steps, self.limits)
        except NewsletterError as error:  # nothing more can be recorded safely; unrecorded rows stay `sending`
            self.halt(str(error))
            for lane in lanes:
                lane.finished = True
            return
        for lane, step, answer in zip(asking, steps, answers, strict=True):
            if lane.outcome is not None:
                self._count(lane.outcome)
            lane.claim, lane.outcome, lane.data_started = None, None, False
            if isinstance(answer, Claim):
                lane.claim = answer
            elif isinstance(answer, float):
                lane.resume_at = time.monotonic() + answer
            elif step.claim_next:  # nobody left
                lane.finished = True
            if step.claim_next and not isinstance(answer, Claim):
                self.claims -= 1  # the reserved claim was not used

    def _wait(self, lanes: list[_Lane]) -> None:
        """Nothing in flight: sleep until the first connection may claim again, or until halted."""
        waiting = [lane.resume_at for lane in lanes if not lane.finished]
        self.stop.wait(min(max(min(waiting) - time.monotonic(), 0.0), 1.0))  # at most 1 s, for the progress line

    def _deliver(self, lanes: list[_Lane]) -> None:
        """One message on each lane: all envelopes, then all messages, then all replies."""
        for lane in lanes:
            self._step(lane, self._start)
        for lane in [lane for lane in lanes if lane.in_flight]:
            self._step(lane, self._transmit)
        self._precompose(len(lanes))
        for lane in [lane for lane in lanes if lane.in_flight]:
            self._step(lane, self._finish)

    def _precompose(self, count: int) -> None:
        """Compose the messages the next round will most likely claim (the next pending recipients, in order)
        while the server is still busy with this round's, instead of after the commit, when it waits for us."""
        old, compose = self.precomposed, self.send.factory.compose
        upcoming = self.send.journal.upcoming(count)
        self.precomposed = {row_id: old.get(row_id) or compose(recipient) for row_id, recipient in upcoming}

    def _start(self, lane: _Lane) -> None:
        if lane.backend is None:
            backend = SMTPBackend(self.send.settings, self.send.factory.sender.addr_spec, self.options.verbose)
            backend.connect()
            lane.backend = backend
        message = self.precomposed.pop(lane.claim.id, None) or self.send.factory.compose(lane.claim.recipient)
        lane.backend.start(message)

    def _transmit(self, lane: _Lane) -> None:
        lane.backend.transmit(before_data=lambda: setattr(lane, "data_started", True))

    def _finish(self, lane: _Lane) -> None:
        lane.outcome = Outcome("sent", lane.backend.finish())
        lane.reconnects = 0

    def _step(self, lane: _Lane, step: Callable[[_Lane], None]) -> None:
        """Run one step of a lane's send; a failure becomes the recipient's outcome."""
        try:
            step(lane)
        except AuthenticationFailed as error:  # no point trying again with the same password
            lane.hang_up()
            lane.outcome = Outcome("pending", str(error), charge_attempt=False, fatal=True)
        except DeliveryError as error:
            lane.outcome = self._failure(lane, error)

    def _failure(self, lane: _Lane, error: DeliveryError) -> Outcome:
        """What a failed send means for its recipient, and for the connection."""
        if lane.backend is None:  # could not connect: the server, not the recipient; wait, and do not charge them
            lane.reconnects += 1
            lane.resume_at = time.monotonic() + self._delay(lane.reconnects)
            return Outcome("pending", str(error), charge_attempt=False)
        if error.permanent:  # a final refusal of this message; the connection stays usable
            return Outcome("failed", str(error))
        lane.hang_up()
        attempts = lane.claim.attempts + 1
        if lane.data_started and error.code is None:
            return Outcome("in-doubt", str(error))  # the server may have stored it (RFC 1047)
        if attempts >= self.options.max_attempts:
            return Outcome("failed", f"gave up after {attempts} attempts: {error}")
        # a temporary refusal: retry this recipient later, and go on with the next one meanwhile
        return Outcome("pending", str(error), retry_in=self._delay(attempts))

    def _delay(self, attempt: int) -> float:
        """Exponential backoff: retry_delay, doubling per attempt, capped at max_retry_delay."""
        return min(self.options.retry_delay * 2 ** max(attempt - 1, 0), self.options.max_retry_delay)

    def _may_claim(self) -> bool:
        """Reserve one claim of this run's --limit; False once they are all taken."""
        if self.options.limit is not None and self.claims >= self.options.limit:
            return False
        self.claims += 1
        return True

    def _count(self, outcome: Outcome) -> None:
        progress = self.progress
        if outcome.fatal:
            self.halt(outcome.reply)
        if outcome.state == "sent":
            progress.sent += 1
            progress.sent_this_run += 1
            self.consecutive_failures = 0
            return
        progress.failed += outcome.state == "failed"
        progress.in_doubt += outcome.state == "in-doubt"
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.options.max_consecutive_failures:
            self.halt(f"stopped after {self.consecutive_failures} consecutive failed sends (last: {outcome.reply})")

    def _report_progress(self, force: bool = False) -> None:
        if self.on_progress and (force or time.monotonic() - self.last_report > 0.1):
            self.last_report = time.monotonic()
            self.on_progress(self.progress)
