"""`newsletter send`: the edition to every subscriber, exactly once, resumable, rate-limited, over N connections.

Each connection is a thread that loops: claim the next recipient in the journal (durably `sending`), compose,
MAIL / RCPT / DATA, and record the checked outcome while claiming the next one in the same commit. Retries,
backoff and the consecutive-failure stop live here; durability and rate limits live in the journal.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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


class _Runner:
    """One run: a worker process per SMTP connection, coordinated by this process, which alone keeps the journal.

    Processes rather than threads, because composing and SMTP framing are Python code that one interpreter lock
    would serialise. Workers are forked (they inherit the rendered edition, nothing is pickled), ignore Ctrl-C, and
    are killed by the kernel if this process dies, so a `kill -9` of `newsletter send` stops every connection at
    once. Each worker asks over a pipe for its next recipient, reporting the outcome of the last one; this process
    answers all the workers that are waiting with one journal commit (group commit), so they share an fsync.
    """

    def __init__(self, send: Send, report: SendReport, on_progress: Callable[[Progress], None] | None) -> None:
        self.send = send
        self.options = send.options
        self.report = report
        self.progress = report.progress
        self.on_progress = on_progress
        self.limits = self.options.limits()
        self.context = multiprocessing.get_context("fork")
        self.stop = self.context.Event()  # wakes workers out of their backoff waits
        self.consecutive_failures = 0
        self.claims = 0
        self.parent = os.getpid()

    def halt(self, reason: str) -> None:
        """Stop handing out recipients; workers finish their message in flight. The first reason is reported."""
        self.report.stop_reason = self.report.stop_reason or reason
        self.stop.set()

    def run(self) -> None:
        journal = self.send.journal
        journal.detach()  # an SQLite connection must not cross a fork
        pipes, workers = [], []
        for number in range(max(1, self.options.connections)):
            mine, theirs = self.context.Pipe()
            worker = self.context.Process(target=self._worker, args=(theirs,), name=f"newsletter-smtp-{number}")
            worker.start()
            theirs.close()
            pipes.append(mine)
            workers.append(worker)
        journal.attach()
        try:
            self._coordinate(pipes)
        finally:
            for worker in workers:
                worker.join()

    def _coordinate(self, pipes: list) -> None:
        """Serve the workers' steps until every worker has gone; Ctrl-C stops new claims, not the bookkeeping."""
        interrupted = False
        last_report = 0.0
        while pipes:
            try:
                ready = multiprocessing.connection.wait(pipes, timeout=0.2)
                steps = []
                for pipe in ready:
                    try:
                        steps.append((pipe, pipe.recv()))
                    except EOFError:  # the worker is done (or died: its recipient stays `sending`)
                        pipes.remove(pipe)
                if steps:
                    self._answer(steps)
                if time.monotonic() - last_report > 0.1 or not pipes:
                    last_report = time.monotonic()
                    if self.on_progress:
                        self.on_progress(self.progress)
            except KeyboardInterrupt:
                interrupted = True
                self.halt("interrupted")
        if interrupted:
            raise KeyboardInterrupt

    def _answer(self, requests: list) -> None:
        """Record every outcome and hand out the next recipients, in one durable commit."""
        steps = []
        for _, step in requests:
            if step.outcome is not None:
                self._count(step.outcome)
            wants = step.claim_next and not self.stop.is_set() and self._may_claim()
            steps.append(Step(step.finished, step.outcome, wants))
        try:
            answers = self.send.journal.advance(steps, self.limits)
        except NewsletterError as error:  # nothing more can be recorded safely
            self.halt(str(error))
            answers = [None] * len(steps)
        for (pipe, _), step, answer in zip(requests, steps, answers, strict=True):
            if step.claim_next and not isinstance(answer, Claim):
                self.claims -= 1  # the reserved claim was not used
            pipe.send(answer)

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

    def _worker(self, pipe) -> None:
        """The loop of one connection, in its own process: ask for a recipient, send, report, repeat."""
        _die_with_parent(self.parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        backend: SMTPBackend | None = None
        step = Step()
        backoff = 0
        try:
            while True:
                pipe.send(step)
                answer = pipe.recv()
                if answer is None:
                    return
                if isinstance(answer, float):
                    step = Step()
                    self.stop.wait(answer)
                    continue
                outcome, backend = self._deliver(answer, backend)
                step = Step(answer, outcome)
                connection_failed = outcome.state == "pending" and not outcome.charge_attempt
                backoff = backoff + 1 if connection_failed else 0
                if connection_failed and not outcome.fatal:  # the server, not the recipient: wait, then reconnect
                    self.stop.wait(self._delay(backoff))
        except (EOFError, OSError):  # the coordinator is gone; the kernel ends this process with it
            return
        finally:
            if backend is not None:
                backend.close()
            pipe.close()

    def _delay(self, attempt: int) -> float:
        """Exponential backoff: retry_delay, doubling per attempt, capped at max_retry_delay."""
        return min(self.options.retry_delay * 2 ** max(attempt - 1, 0), self.options.max_retry_delay)

    def _deliver(self, claim: Claim, backend: SMTPBackend | None) -> tuple[Outcome, SMTPBackend | None]:
        """Send one claimed message; returns its outcome and the connection to reuse (None to reconnect)."""
        if backend is None:
            backend = SMTPBackend(self.send.settings, self.send.factory.sender.addr_spec, self.options.verbose)
            try:
                backend.connect()
            except AuthenticationFailed as error:  # no point trying again with the same password
                return Outcome("pending", str(error), charge_attempt=False, fatal=True), None
            except DeliveryError as error:  # the server, not this recipient: retry without charging them
                return Outcome("pending", str(error), charge_attempt=False), None
        message = self.send.factory.compose(claim.recipient)
        data_started = threading.Event()  # set by the backend just before DATA
        try:
            return Outcome("sent", backend.send(message, before_data=data_started.set)), backend
        except DeliveryError as error:
            if error.permanent:  # a final refusal of this message; the connection stays usable
                return Outcome("failed", str(error)), backend
            backend.close()
            if data_started.is_set() and error.code is None:
                return Outcome("in-doubt", str(error)), None  # the server may have stored it (RFC 1047)
            if claim.attempts + 1 >= self.options.max_attempts:
                return Outcome("failed", f"gave up after {claim.attempts + 1} attempts: {error}"), None
            # a temporary refusal: retry this recipient later, and go on with the next one meanwhile
            return Outcome("pending", str(error), retry_in=self._delay(claim.attempts + 1)), None


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (prctl PR_SET_PDEATHSIG), so a killed send leaves
    no orphan still sending; elsewhere the parent check below still catches a parent already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
