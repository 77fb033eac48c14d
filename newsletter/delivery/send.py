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

from ..audience.recipients import suppressed_addresses
from ..audience.tokens import required_keys, unsubscribe_keys, verp_tag
from ..base.addresses import mailbox_key, parse_mailbox
from ..base.model import Publication
from ..base.workspace import Workspace
from ..edition.pipeline import prepare_for_recipients
from .journal import Journal, JournalReader, JournalStore, journal_path
from .lanes import Run
from .policy import SendOptions
from .report import Progress, SendReport, StopReason
from .transport import TransportFactory, run_deliveries, transport_for


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
            self.where = "the caller's transport"  # the plan names it; no throwaway connection is made to ask
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
        self._runner: Run | None = None

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
        self._runner = Run(self, journal, report, on_progress)
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
            self._runner.halt_threadsafe(StopReason.REQUESTED)
