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

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..audience.exclusions import Exclusions
from ..audience.recipients import Position, RecipientFile, SeenKeys, checked_rows
from ..audience.tokens import required_keys, unsubscribe_keys, verp_tag
from ..base.addresses import parse_mailbox
from ..base.model import Publication
from ..base.workspace import Workspace
from ..edition.pipeline import message_factory
from .journal import Intake, Journal, JournalReader, JournalStore, PendingWindow, journal_path
from .lanes import Run
from .policy import SendOptions
from .report import Progress, SendReport, StopReason
from .transport import TransportFactory, run_deliveries, transport_for


@dataclass(frozen=True)
class SendPlan:
    """What a run would do: how many recipients it would send to, and how many it would not, and why.

    `counted` is False when the list file was not read ahead (`plan(count=False)`): then the rows not yet in
    the journal are counted by lines, and bad rows, duplicates and suppressed addresses among them are only
    found, and reported, as the send reads them."""

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
    counted: bool = True


COUNT_QUICKLY = 50_000  # lines of a list that `plan(count=None)` reads ahead: a quarter of a second


@dataclass(frozen=True)
class _Unread:
    """The rows of the list file not yet in the journal, as a counting pass found them."""

    to_send: int = 0
    suppressed: int = 0


def _return_path(publication: Publication, edition: str) -> Callable[[int], str] | None:
    """With `bounce_address`, the VERP return path of each journal row: bounces+TAG@domain, so that a bounce
    names its recipient even when the remote server's report leaves the original message out."""
    if not publication.bounce_address:
        return None
    local, _, domain = parse_mailbox(publication.bounce_address, "bounce_address").addr_spec.rpartition("@")
    keys = unsubscribe_keys(publication.unsubscribe_secret)
    return lambda row_id: f"{local}+{verp_tag(keys, publication.list_id, edition, row_id)}@{domain}"


def legacy_recipients_print(source: RecipientFile) -> str:
    """The fingerprint newsletter 0.1 kept of a list (its valid rows, de-duplicated, in order), so a send it
    started can be resumed."""
    digest, seen = hashlib.sha256(), SeenKeys()
    try:
        for checked in checked_rows(source, seen, lambda keys: set()):
            if checked.problem is None:
                r = checked.row.recipient
                digest.update(f"{r.email}\0{r.name}\0{sorted(r.fields.items())}\0".encode())
    finally:
        seen.close()
    return digest.hexdigest()


class Send:
    """A prepared send: the edition rendered and checked, the list's header checked, nothing written and no
    connection opened until `run`. The list itself is read as the send goes (a chunk at a time, into the
    journal), so a list of millions starts at once and costs no more memory than a list of ten."""

    def __init__(self, edition: str | Path, recipients_csv: Path, workspace: Workspace,
                 options: SendOptions | None = None, transport: TransportFactory | None = None,
                 on_problem: Callable[[str], None] | None = None) -> None:  # fmt: skip
        """`transport` makes one connection per lane; by default the configured SMTP server's. `on_problem` is
        told each row left out (bad, a duplicate), by file and line, when it is met."""
        self.workspace = workspace
        self.options = options or SendOptions()
        self.on_problem = on_problem or (lambda problem: None)
        self.source = RecipientFile(recipients_csv)
        self.factory = message_factory(edition, workspace, self.source.columns)
        publication = self.factory.rendered.publication
        required_keys(publication.unsubscribe_secret, "send")
        if transport is None:
            transport, self.where = transport_for(
                workspace.settings, self.factory.sender.addr_spec, self.options.verbose
            )
        else:
            self.where = "the caller's transport"  # the plan names it; no throwaway connection is made to ask
        self.new_transport = transport
        self.return_path = _return_path(publication, self.factory.rendered.edition.name)
        self.exclusions = Exclusions(workspace)
        survey = self.source.survey()
        self._lines = survey.lines
        self._prints = (self.factory.fingerprint(), survey.sha256)
        self._recipients_csv = recipients_csv
        self.path = journal_path(workspace.root, self.factory.rendered.edition.name)
        self._counts: dict[str, int] = {}
        self._read_to, self._read_all = Position(0, 0), False
        self._reported = False  # a counting pass has reported every bad row already
        self.resuming = False
        if self.path.exists():  # only read: declining the plan must leave no trace
            with JournalReader(self.path) as reader:
                meta = reader.meta()
                if meta and "format" not in meta:  # 0.1 fingerprinted the rows, not the file
                    self._prints = (self._prints[0], legacy_recipients_print(self.source))
                self.resuming = reader.check_same_send(*self._prints, recipients_csv)
                self._counts = reader.counts()
                if self.resuming:
                    self._read_to, self._read_all = reader.read_to()
        self._store: JournalStore | None = None
        self._runner: Run | None = None

    def close(self) -> None:
        self.exclusions.close()
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def list_read(self) -> bool:
        """Whether the whole recipients file is in the journal (else totals are estimates, by lines)."""
        return self._read_all

    def counts(self) -> dict[str, int]:
        """Recipients per journal state, as of the last look (the start, or the end of `run`)."""
        return dict(self._counts)

    def plan(self, count: bool | None = True) -> SendPlan:
        """What `run` would do; nothing is written until then, so declining leaves no journal at all.

        With `count`, the rest of the list is read once (holding only counts) and its bad rows and duplicates
        reported; without, the plan is ready at once and they are reported as the send meets them. None counts
        a list short enough to read in a moment, so a big one starts sending at once."""
        count = self._lines <= COUNT_QUICKLY if count is None else count
        counts = self._counts
        in_doubt = counts.get("in-doubt", 0) if self.options.resend_in_doubt else 0
        left = 0 if self._read_all else max(self._lines - max(self._read_to.line, 1), 0)
        unread, newly_suppressed = _Unread(to_send=left), 0
        if count:
            unread, newly_suppressed = self._count_unread(), self._count_newly_suppressed()
            self._reported = True
        pending = counts.get("pending", 0) + unread.to_send + unread.suppressed
        return SendPlan(
            self.factory.rendered.edition.name, self.factory.subject,
            total=sum(counts.values()) + unread.to_send + unread.suppressed,
            to_send=pending - newly_suppressed - unread.suppressed + in_doubt, pending=pending + in_doubt,
            suppressed=counts.get("skipped", 0) + newly_suppressed + unread.suppressed,
            sent=counts.get("sent", 0), failed=counts.get("failed", 0), in_doubt=counts.get("in-doubt", 0),
            host=self.where, rate=self.options.describe_rate(), connections=self.options.connections,
            journal=self.path, resuming=self.resuming, counted=count,
        )  # fmt: skip

    def _count_unread(self) -> _Unread:
        """Read the rows not yet in the journal once, reporting bad ones and duplicates, keeping only counts."""
        reader = JournalReader(self.path) if self.resuming else None
        seen = SeenKeys(earlier=reader.line_of if reader else None)
        to_send = suppressed = 0
        try:
            if not self._read_all:
                since = self._read_to if self._read_to.line else None
                for checked in checked_rows(self.source, seen, self.exclusions.among, since):
                    if checked.problem is None:
                        to_send += 1
                    elif checked.suppressed:
                        suppressed += 1
                    else:
                        self.on_problem(checked.problem)
        finally:
            seen.close()
            if reader is not None:
                reader.close()
        return _Unread(to_send, suppressed)

    def _count_newly_suppressed(self) -> int:
        """Recipients in the journal, not yet sent to, who have been suppressed since: a batch at a time."""
        if not self.resuming:
            return 0
        found, after = 0, 0
        with JournalReader(self.path) as reader:
            while batch := reader.pending_keys(after, 1000):
                found += len(self.exclusions.among(key for _, key in batch))
                after = batch[-1][0]
        return found

    def run(self, on_progress: Callable[[Progress], None] | None = None,
            window: PendingWindow | None = None) -> SendReport:  # fmt: skip
        """Send to every pending recipient, then report. Ctrl-C ends it early with stop_reason 'interrupted'.
        `window` bounds the recipients held in memory (the default suits any list)."""
        store = self._open_store()
        recovered = store.recover()
        if self.options.resend_in_doubt:
            store.release_in_doubt()
        report_problem = (lambda problem: None) if self._reported else self.on_problem
        intake = Intake(store, self.source, self.factory.message_id, report_problem, self._lines)
        journal = Journal(store, self.options.limits(), intake, self.exclusions, window)
        counts = store.counts()
        connections = self.options.connections
        progress = Progress(journal.total(), counts["sent"], counts["failed"], counts["in-doubt"], counts["skipped"],
                            connections=connections, connections_allowed=connections)  # fmt: skip
        report = SendReport(progress)
        if recovered and not self.options.resend_in_doubt:
            report.notes.append(
                f"{recovered} recipient(s) were caught mid-send by an interrupted run and are in doubt: not re-sent "
                "(see `newsletter status`; --resend-in-doubt sends them again)"
            )
        self._runner = Run(self, journal, report, on_progress)
        try:
            run_deliveries(self._runner.run())
        finally:
            self._counts = store.counts()
            self._read_to, self._read_all = intake.position, intake.finished
        return report

    def _open_store(self) -> JournalStore:
        """Create the journal (or open it again), checking once more that it holds this very send."""
        if self._store is None:
            store = JournalStore(self.path)
            try:
                if not store.check_same_send(*self._prints, self._recipients_csv):
                    store.start(*self._prints, self._recipients_csv)
            except BaseException:
                store.close()
                raise
            self._store = store
            self.resuming = True
        return self._store

    def stop(self) -> None:
        """Ask a running `run` (in another thread) to finish the messages in flight and return."""
        if self._runner is not None:
            self._runner.halt_threadsafe(StopReason.REQUESTED)
