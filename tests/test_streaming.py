"""Lists of any size: a send holds a bounded window of recipients, reads the list as it goes, and resumes by reading
on from where it stopped. Real journal files, the real send loop, a handler standing in for the server."""

from __future__ import annotations

import collections
import gc
import sqlite3
import tracemalloc
from pathlib import Path

from conftest import SAMPLE_EDITION, recipients_file

from newsletter.base.errors import TemporaryFailure
from newsletter.base.workspace import open_workspace
from newsletter.delivery.handler import HandlerTransport
from newsletter.delivery.journal import CHUNK, PendingWindow, journal_path
from newsletter.delivery.send import Send, SendOptions

SECRET = "streaming-test-secret-0123456789"


class MeasuredWindow(PendingWindow):
    """The send's window, remembering the most rows it ever held."""

    most = 0

    def add(self, rows, now, read_to) -> None:
        super().add(rows, now, read_to)
        self.most = max(self.most, self.held)

    def retry(self, row, due, charged) -> None:
        super().retry(row, due, charged)
        self.most = max(self.most, self.held)


def journal_size(project: Path) -> int:
    with sqlite3.connect(journal_path(project, SAMPLE_EDITION)) as db:
        return db.execute("SELECT count(*) FROM recipients").fetchone()[0]


def forget_journal(project: Path) -> None:
    path = journal_path(project, SAMPLE_EDITION)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def send_all(project: Path, csv_path: Path, window: PendingWindow, problems: list[str] | None = None,
             defer_every: int = 0, **options) -> tuple[collections.Counter, list[int]]:  # fmt: skip
    """Send the sample edition to the list; every `defer_every`-th recipient is deferred once (4xx). Returns
    the messages accepted per address, and the journal's size at each accepted message."""
    accepted: collections.Counter = collections.Counter()
    deferred: set[str] = set()
    sizes: list[int] = []

    def server(message) -> str:
        email = message.recipient.email
        if defer_every and int(email[1:6]) % defer_every == 0 and email not in deferred:
            deferred.add(email)
            raise TemporaryFailure("451 4.7.1 greylisted, try again later", code=451)
        accepted[email] += 1
        if len(sizes) < 3:
            sizes.append(journal_size(project))
        return "250 OK"

    options = SendOptions(connections=4, retry_delay=0.01, max_retry_delay=0.01, **options)
    report = None if problems is None else problems.append
    send = Send(SAMPLE_EDITION, csv_path, open_workspace(project), options,
                transport=lambda: HandlerTransport(server), on_problem=report)  # fmt: skip
    try:
        send.plan(count=False)
        send.run(window=window)
    finally:
        send.close()
    return accepted, sizes


def test_the_window_stays_the_same_size_whatever_the_list_and_everyone_gets_one(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    for count in (300, 3000):
        forget_journal(project)
        window = MeasuredWindow(size=16, retry_limit=4)
        csv_path = recipients_file(project / f"list{count}.csv", count)
        accepted, sizes = send_all(project, csv_path, window, defer_every=7)
        assert len(accepted) == count and set(accepted.values()) == {1}, "every recipient exactly once"
        assert window.most <= 16 + 4, f"{count} recipients: the window held {window.most} rows"
        assert sizes[0] <= CHUNK, "sending began before the list was read whole"


def test_memory_does_not_grow_with_the_list(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    peaks = {}
    for count in (1_000, 10_000):
        forget_journal(project)
        csv_path = recipients_file(project / f"list{count}.csv", count)
        gc.collect()
        tracemalloc.start()
        try:
            accepted, _ = send_all(project, csv_path, PendingWindow())
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(accepted) == count
    assert peaks[10_000] < peaks[1_000] * 1.3 + 1_000_000, f"peak bytes by list size: {peaks}"


def test_a_resumed_send_reads_on_from_where_it_stopped(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    csv_path = recipients_file(project / "list.csv", 3000)
    with csv_path.open("a", encoding="utf-8") as handle:
        handle.write("not an address\nr00007@example.org\nlast@example.org\n")
    problems: list[str] = []
    first, _ = send_all(project, csv_path, PendingWindow(size=16), problems, limit=1500)
    assert sum(first.values()) == 1500
    assert journal_size(project) <= 1500 + CHUNK, "the first run read only what it needed"
    second, _ = send_all(project, csv_path, PendingWindow(size=16), problems)
    both = first + second
    assert len(both) == 3001 and set(both.values()) == {1}, "every recipient exactly once over both runs"
    assert both["last@example.org"] == 1
    assert problems == [
        f"{csv_path}:3002: invalid address 'not an address': contains white space or a control character",
        f"{csv_path}:3003: duplicate of line 9 (r00007@example.org), sent once",
    ], "each bad row reported once, by line, when it was met"
