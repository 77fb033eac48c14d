"""`newsletter send` against real aiosmtpd servers that fail on purpose: exactly once, resumable, rate-limited.

Every assertion about delivery is made from the server's own record of what it received."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import inspect
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PASSWORD, SAMPLE_EDITION, USERNAME, parse_message, recipients_file, wait_until

from newsletter.base.errors import TemporaryFailure
from newsletter.base.workspace import open_workspace
from newsletter.delivery.capture import CaptureHandler
from newsletter.delivery.handler import HandlerTransport
from newsletter.delivery.journal import journal_path
from newsletter.delivery.send import Send, SendOptions

pytest.importorskip("aiosmtpd")
SECRET = "test-unsubscribe-secret-0123"


@pytest.fixture
def sending(project: Path, smtp_env):
    """Point the project at a server and give it an unsubscribe secret."""

    def configure(server) -> None:
        smtp_env({**server.env("none"), "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})

    return configure


def run_send(project: Path, csv_path: Path, transport=None, **options) -> object:
    options.setdefault("retry_delay", 0.01)
    send = Send(SAMPLE_EDITION, csv_path, open_workspace(project), SendOptions(**options), transport=transport)
    try:
        return send.run()
    finally:
        send.close()


def received_counts(handler) -> collections.Counter:
    return collections.Counter(rcpt for r in handler.received for rcpt in r.rcpt_tos)


def journal_rows(project: Path) -> dict[str, str]:
    import sqlite3

    with sqlite3.connect(journal_path(project, SAMPLE_EDITION)) as db:
        return dict(db.execute("SELECT email, state FROM recipients"))


def nobody_charged(project: Path) -> bool:
    """The send started, and every recipient read into its journal so far is pending, never attempted."""
    import sqlite3

    with sqlite3.connect(journal_path(project, SAMPLE_EDITION)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'started'").fetchone(), "the send did not start"
        charged = db.execute("SELECT count(*) FROM recipients WHERE state != 'pending' OR attempts > 0")
        return charged.fetchone()[0] == 0


@dataclass
class Server:
    """A mail server played by a function (`newsletter.delivery.handler`): `reply(lane, message)` answers each
    message or raises; every accepted message is kept with the lane (connection) it came on."""

    reply: Callable = lambda lane, message: "250 OK"
    received: list = field(default_factory=list)

    def transport(self):
        lanes = itertools.count()

        def factory() -> HandlerTransport:
            lane = next(lanes)

            async def handle(message):
                answer = self.reply(lane, message)
                answer = await answer if inspect.isawaitable(answer) else answer
                self.received.append((lane, message))
                return answer

            return HandlerTransport(handle, where=f"lane {lane}")

        return factory

    def counts(self) -> collections.Counter:
        return collections.Counter(message.recipient.email for _, message in self.received)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)


class Faulty(CaptureHandler):
    """Fails chosen recipients once, in one of the ways real servers fail, then behaves."""

    def __init__(self, faults: dict[str, str], pipelining: bool = True) -> None:
        super().__init__(pipelining=pipelining)
        self.faults = dict(faults)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.faults.get(address) == "rcpt-421":
            del self.faults[address]
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many connections, closing"
        if self.faults.get(address) == "rcpt-550":
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self.faults.pop(envelope.rcpt_tos[0], None)
        if fault == "421":  # reply 421 and close: not stored, safe to retry
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down"
        if fault == "451":
            return "451 4.3.0 Temporary local problem"
        if fault == "554":
            return "554 5.7.1 Rejected"
        if fault == "abort":  # drop the connection without storing or replying
            server.transport.abort()
            return "250 never seen"
        if fault == "store-abort":  # store, then drop before the 250 reaches the client: the ambiguous case
            await super().handle_DATA(server, session, envelope)
            server.transport.abort()
            return "250 never seen"
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_faults_end_exactly_once_or_reported(project: Path, smtp_server, sending, pipelining: bool) -> None:
    faults = {"r00001@example.org": "421", "r00002@example.org": "451", "r00003@example.org": "554",
              "r00004@example.org": "abort", "r00005@example.org": "store-abort",
              "r00006@example.org": "rcpt-421", "r00007@example.org": "rcpt-550"}  # fmt: skip
    server = smtp_server(handler=Faulty(faults, pipelining))
    sending(server)
    report = run_send(project, recipients_file(project / "list.csv", 12))
    counts, states = received_counts(server.handler), journal_rows(project)
    assert max(counts.values()) == 1, "nobody got two"
    assert states["r00001@example.org"] == "sent" and counts["r00001@example.org"] == 1  # 421: retried
    assert states["r00002@example.org"] == "sent" and counts["r00002@example.org"] == 1  # 451: retried
    assert states["r00006@example.org"] == "sent" and counts["r00006@example.org"] == 1  # dropped before DATA
    assert states["r00003@example.org"] == "failed" and counts["r00003@example.org"] == 0  # 554: final
    assert states["r00007@example.org"] == "failed" and counts["r00007@example.org"] == 0  # 550 to RCPT
    assert states["r00004@example.org"] == "in-doubt" and counts["r00004@example.org"] == 0
    assert states["r00005@example.org"] == "in-doubt" and counts["r00005@example.org"] == 1
    for email, state in states.items():
        if state == "sent":
            assert counts[email] == 1
    assert (report.progress.sent, report.progress.failed, report.progress.in_doubt) == (8, 2, 2)
    assert not report.stop_reason


def test_starttls_and_auth_once_per_connection_reused_for_many_messages(project: Path, smtp_server, smtp_env):
    server = smtp_server(tls="starttls", auth=True)
    smtp_env({**server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD),
              "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})  # fmt: skip
    report = run_send(project, recipients_file(project / "list.csv", 30), connections=3)
    assert report.complete and report.progress.sent == 30
    assert server.authenticator.attempts == 3, "one login per connection, not per message"
    assert len({r.peer for r in server.handler.received}) == 3
    for received in server.handler.received:
        message = parse_message(received.data)
        assert received.rcpt_tos == (message["To"].addresses[0].addr_spec,)
        assert received.mail_from == "newsletter@seattle-neuro.example"
    assert set(received_counts(server.handler).values()) == {1} and len(received_counts(server.handler)) == 30


def test_every_message_arrives_after_its_recipient_is_committed_as_sending(project: Path, secret) -> None:
    """The journal's promise, checked from the receiver's side: while a message is handed over, a separate reader
    of the journal (which sees committed transactions only) already finds its recipient `sending`."""
    import sqlite3

    states: list[str] = []

    def watching(lane, message):
        uri = f"{journal_path(project, SAMPLE_EDITION).as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            query = "SELECT state FROM recipients WHERE email = ?"
            (state,) = db.execute(query, (message.recipient.email,)).fetchone()
        states.append(state)
        return "250 OK"

    report = run_send(project, recipients_file(project / "list.csv", 300), Server(watching).transport(),
                      connections=3)  # fmt: skip
    assert report.progress.sent == 300
    assert states == ["sending"] * 300


def test_in_doubt_resent_only_when_asked_with_the_same_message_id(project: Path, smtp_server, sending) -> None:
    server = smtp_server(handler=Faulty({"r00000@example.org": "store-abort"}))
    sending(server)
    csv_path = recipients_file(project / "list.csv", 3)
    run_send(project, csv_path)
    run_send(project, csv_path)
    assert received_counts(server.handler)["r00000@example.org"] == 1, "in-doubt is not re-sent by default"
    run_send(project, csv_path, resend_in_doubt=True)
    first, second = [parse_message(r.data) for r in server.handler.received if r.rcpt_tos == ("r00000@example.org",)]
    assert first["Message-ID"] == second["Message-ID"]
    assert journal_rows(project)["r00000@example.org"] == "sent"


def test_consecutive_failures_stop_the_run_and_a_rerun_resumes(project: Path, secret) -> None:
    broken = [True]

    def disk_full(lane, message):
        if broken[0]:
            raise TemporaryFailure("451 4.3.0 Disk full", code=451)
        return "250 OK"

    server = Server(disk_full)
    csv_path = recipients_file(project / "list.csv", 30)
    report = run_send(project, csv_path, server.transport(), max_consecutive_failures=5)
    assert report.stop_reason.startswith("stopped after 5 consecutive failed sends (last: ")
    assert "451 4.3.0 Disk full" in report.stop_reason
    assert not server.received
    broken[0] = False
    report = run_send(project, csv_path, server.transport())
    assert report.complete and report.progress.sent == 30
    assert set(server.counts().values()) == {1} and len(server.counts()) == 30


def test_a_server_refusing_connections_charges_no_recipient(project: Path, smtp_env) -> None:
    """A 554 greeting is the server's problem, not the recipient's: nobody is marked failed, a rerun resumes."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    refusals = []

    def refuse() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed at the end of the test
                return
            with connection:
                connection.sendall(b"554 5.3.2 No service for you\r\n")
                refusals.append(1)

    threading.Thread(target=refuse, daemon=True).start()
    try:
        smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(listener.getsockname()[1]), "SMTP_SECURITY": "none",
                  "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})  # fmt: skip
        report = run_send(project, recipients_file(project / "list.csv", 5), max_consecutive_failures=3)
    finally:
        listener.close()
    assert report.stop_reason.startswith("stopped after 3 consecutive failed sends")
    assert "554 5.3.2 No service for you" in report.stop_reason
    assert len(refusals) == 3
    assert nobody_charged(project)


def test_changed_recipients_or_edition_is_refused(project: Path, smtp_server, sending, cli) -> None:
    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 3)
    run_send(project, csv_path, limit=1)
    other = recipients_file(project / "other.csv", 4)
    result = cli("send", SAMPLE_EDITION, "--recipients", other, "--yes")
    assert result.code == 1 and "other.csv: this send was started with a different recipients list" in result.err
    assert "to start a fresh send, move" in result.err
    article = next((project / "issues" / SAMPLE_EDITION).glob("*.md"))
    article.write_text(article.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    result = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert result.code == 1 and "the edition changed after this send started" in result.err
    assert len(server.handler.received) == 1


def test_no_terminal_and_no_yes_opens_no_connection(project: Path, smtp_server, sending) -> None:
    server = smtp_server()
    sending(server)
    recipients_file(project / "list.csv", 3)
    command = [sys.executable, "-m", "newsletter", "send", SAMPLE_EDITION, "--recipients", "list.csv"]
    run = subprocess.run(command, cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 1
    assert "3 to send, 0 suppressed, 0 already sent of 3 recipient(s), via 127.0.0.1:" in run.stdout
    assert "no terminal to confirm on; add --yes" in run.stderr
    assert not server.handler.received
    recipients_file(project / "list.csv", 4)  # declining left no trace: another list is not "a changed list"
    run = subprocess.run([*command, "--yes"], cwd=project, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Sending edition back-pain" in run.stdout and "4 to send, 0 suppressed, 0 already sent of 4" in run.stdout
    assert len(server.handler.received) == 4


def test_send_requires_an_unsubscribe_secret(project: Path, smtp_server, smtp_env, cli) -> None:
    server = smtp_server()
    smtp_env(server.env("none"))
    recipients_file(project / "list.csv", 1)
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes")
    assert result.code == 78 and "NEWSLETTER_UNSUBSCRIBE_SECRET must be set" in result.err


def test_suppressed_addresses_are_never_sent_to(project: Path, smtp_server, sending, cli) -> None:
    server = smtp_server()
    sending(server)
    (project / "newsletter.toml").write_text(
        (project / "newsletter.toml").read_text(encoding="utf-8") + 'suppression_file = "unsubscribed.txt"\n'
    )
    (project / "unsubscribed.txt").write_text("R00001@example.org\n")
    csv_path = recipients_file(project / "list.csv", 4)
    run_send(project, csv_path, limit=2)
    (project / "unsubscribed.txt").write_text("R00001@example.org\nr00003@example.org\n")  # arrives mid-send
    result = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert result.code == 0, result.err
    assert sorted(received_counts(server.handler)) == ["r00000@example.org", "r00002@example.org"]
    assert journal_rows(project)["r00003@example.org"] == "skipped"
    assert "skipped 2" in result.out


def test_status_lists_failed_and_in_doubt_also_as_csv(project: Path, smtp_server, sending, cli) -> None:
    server = smtp_server(handler=Faulty({"r00000@example.org": "554", "r00001@example.org": "store-abort"}))
    sending(server)
    csv_path = recipients_file(project / "list.csv", 3)
    result = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert result.code == 1
    assert "sent 1, failed 1, in doubt 1, skipped 0 of 3" in result.out
    status = cli("status", SAMPLE_EDITION)
    assert status.code == 0
    assert status.out.startswith("pending 0, sending 0, sent 1, failed 1, in-doubt 1, skipped 0")
    assert "failed: r00000@example.org (1 attempt(s)):" in status.out and "554 5.7.1 Rejected" in status.out
    assert "in-doubt: r00001@example.org" in status.out
    rows = list(csv.DictReader(cli("status", SAMPLE_EDITION, "--csv").out.splitlines()))
    assert [(r["email"], r["state"]) for r in rows] == [("r00000@example.org", "failed"),
                                                         ("r00001@example.org", "in-doubt")]  # fmt: skip
    assert all(r["message_id"].endswith("@seattle-neuro.example>") for r in rows)


def test_plain_progress_line_per_thousand_without_a_terminal(project: Path, smtp_server, sending, cli) -> None:
    server = smtp_server()
    sending(server)
    recipients_file(project / "list.csv", 1100)
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes", "--connections", "2")
    assert result.code == 0, result.err
    done = [int(line.split("/")[0]) for line in result.err.splitlines() if re.match(r"\d+/1100: sent ", line)]
    assert done[0] < 1000 <= done[-1], result.err  # one line as it starts, one on passing a thousand
    assert "sent 1100, failed 0, in doubt 0, skipped 0 of 1100; this run 1100 at" in result.out
    assert "\r" not in result.out + result.err


def test_without_a_terminal_progress_is_a_line_at_least_every_ten_seconds(monkeypatch, capsys) -> None:
    """Under cron or systemd a slow send still shows it is alive: a line when it starts, then every 10 s."""
    from newsletter.delivery.send import Progress
    from newsletter.sending import _ProgressPrinter

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    now = [0.0]
    printer = _ProgressPrinter(clock=lambda: now[0])
    progress = Progress(total=500)
    for tick in range(250):  # 25 s of a slow relay, a progress call every 0.1 s, 2 messages a second
        now[0] = tick / 10
        progress.sent = tick // 5
        printer(progress)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["0/500", "20/500", "40/500"], lines


def test_the_plan_counts_the_suppressed_and_a_finished_send_says_it_is_complete(
    project: Path, smtp_server, sending, cli
) -> None:
    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 4)
    assert cli("suppress", "r00002@example.org").code == 0
    result = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert result.code == 0, result.err
    assert ": 3 to send, 1 suppressed, 0 already sent of 4 recipient(s)" in result.out
    assert "edition back-pain is complete" in result.out
    again = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert again.code == 0, again.err
    assert again.out.startswith('Edition back-pain "Is Physical Therapy Worth It for Back Pain?" is complete: 0 to '
                                "send, 1 suppressed, 3 already sent of 4 recipient(s)")  # fmt: skip
    assert "Resuming" not in again.out and len(server.handler.received) == 3


def test_ctrl_c_finishes_the_messages_in_flight_and_resumes(project: Path, smtp_server, sending) -> None:
    """The first Ctrl-C stops claiming but records what is in flight: nothing is left `sending` or in doubt."""

    class Slow(CaptureHandler):
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(0.05)  # a wide window for the interrupt to land while messages are in flight
            return await super().handle_DATA(server, session, envelope)

    server = smtp_server(handler=Slow())
    sending(server)
    recipients_file(project / "list.csv", 200)
    command = [sys.executable, "-m", "newsletter", "send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes",
               "--connections", "2"]  # fmt: skip
    process = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(server.handler.received) >= 10 or process.poll() is not None, "10 messages to arrive")
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 75, err  # EX_TEMPFAIL: stopped, resumable
    assert "interrupted; run the same command again to resume" in err and "Traceback" not in err
    states = journal_rows(project)
    sent = collections.Counter(states.values())["sent"]
    assert f"sent {sent}, failed 0, in doubt 0, skipped 0 of 200; this run {sent} at" in out, "the counts so far"
    assert collections.Counter(states.values())["sent"] == len(server.handler.received) < 200
    assert set(states.values()) == {"sent", "pending"}, "in-flight messages were recorded, not left in doubt"
    final = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert set(received_counts(server.handler).values()) == {1} and len(server.handler.received) == 200


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_rate_limit_holds_across_connections_and_restarts(project: Path, smtp_server, sending) -> None:
    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 16)
    run_send(project, csv_path, rate=5, connections=3, limit=7)
    run_send(project, csv_path, rate=5, connections=3)  # restarts at once: the window spans both runs
    arrivals = [r.at for r in server.handler.received]
    assert len(arrivals) == 16
    assert max_in_any_window(arrivals, 1.0) <= 5
    assert arrivals[-1] - arrivals[0] >= 2.0  # 16 messages at 5/s cannot take less


def test_per_hour_limit_counts_earlier_runs(project: Path, smtp_server, sending) -> None:
    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 6)
    run_send(project, csv_path, per_hour=4, limit=3)
    send = Send(SAMPLE_EDITION, csv_path, open_workspace(project), SendOptions(per_hour=4))
    reports = []
    worker = threading.Thread(target=lambda: reports.append(send.run()))
    worker.start()
    try:
        worker.join(1.5)
        assert worker.is_alive(), "the fifth message of the hour must wait"
        assert len(server.handler.received) == 4
    finally:
        send.stop()
        worker.join(10)
        send.close()
    assert reports[0].stop_reason == "stopped on request" and reports[0].progress.sent == 4


@pytest.mark.slow
def test_kill_9_at_random_moments_never_duplicates(project: Path, smtp_server, sending) -> None:
    """2,000 recipients, 2 connections, the sender killed with SIGKILL several times, restarted until done."""
    server = smtp_server()
    sending(server)
    recipients_file(project / "list.csv", 2000)
    command = [sys.executable, "-m", "newsletter", "send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes",
               "--connections", "2", "--retry-delay", "0.05"]  # fmt: skip
    seed = random.randrange(1 << 30)
    chance = random.Random(seed)
    kills = 0
    for target in sorted(chance.sample(range(50, 1950), 4)):  # kill once the server holds `target` messages
        process = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: process.poll() is not None or len(server.handler.received) >= target,  # noqa: B023
                   f"{target} messages to arrive", timeout=120, every=chance.uniform(0.001, 0.01))  # fmt: skip
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    for _ in range(5):  # rerun until the journal says everyone is done (a failure streak may stop a run early)
        final = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
        if "is complete" in final.stdout:
            break
    assert "is complete" in final.stdout, f"seed {seed}: {final.stdout}{final.stderr}"
    counts, states = received_counts(server.handler), journal_rows(project)
    assert kills == 4, f"seed {seed}: the sender finished before it could be killed"
    assert max(counts.values()) == 1, f"seed {seed}: a recipient received two messages"
    assert all(counts[e] == 1 for e, s in states.items() if s == "sent"), f"seed {seed}"
    assert all(states[e] in ("failed", "in-doubt") for e in states if counts[e] == 0), f"seed {seed}"
    in_doubt = sum(s == "in-doubt" for s in states.values())
    assert in_doubt <= kills * 2, f"seed {seed}: {in_doubt} in doubt after {kills} kills"
    assert sum(s == "sent" for s in states.values()) >= 2000 - in_doubt
    status = subprocess.run([sys.executable, "-m", "newsletter", "status", SAMPLE_EDITION], cwd=project,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert status.count("in-doubt: ") == in_doubt
    assert all("the server may or may not have it" in line for line in status.splitlines() if "in-doubt: " in line)


# --- independent connections, adaptive pacing, a send that says when it is stuck ---------------------------------


def test_a_slow_connection_does_not_hold_up_the_others(project: Path, secret) -> None:
    """One connection's server answers each message after 0.3 s, the others at once. In lockstep rounds every
    connection would deliver as many as the slowest; independent lanes let the fast ones run ahead."""

    async def lane_zero_is_slow(lane, message):
        if lane == 0:
            await asyncio.sleep(0.3)
        return "250 OK"

    server = Server(lane_zero_is_slow)
    report = run_send(project, recipients_file(project / "list.csv", 60), server.transport(), connections=4)
    assert report.complete and report.progress.sent == 60
    per_lane = collections.Counter(lane for lane, _ in server.received)
    assert len(per_lane) == 4
    assert per_lane[0] <= 5 and min(per_lane[lane] for lane in (1, 2, 3)) >= 10, per_lane
    assert set(server.counts().values()) == {1}


def test_a_relay_with_uneven_delays_gets_every_message_once(project: Path, secret) -> None:
    """Replies after random delays (a relay that scans and queues): 8 connections, each message once, field by
    field as composed: every Message-ID is the recipient's own, and To names the recipient."""

    async def uneven(lane, message):
        await asyncio.sleep(random.expovariate(1 / 0.02))
        return "250 OK"

    server = Server(uneven)
    report = run_send(project, recipients_file(project / "list.csv", 120), server.transport(), connections=8)
    assert report.complete and report.progress.sent == 120
    assert len({lane for lane, _ in server.received}) == 8
    ids = set()
    for _, composed in server.received:
        message = parse_message(composed.data)
        assert message["To"].addresses[0].addr_spec == composed.recipient.email
        assert message["Subject"] == "Is Physical Therapy Worth It for Back Pain?"
        ids.add(message["Message-ID"])
    assert len(ids) == 120
    assert set(journal_rows(project).values()) == {"sent"}


def test_a_hung_connection_stalls_only_itself(project: Path, smtp_server, sending, smtp_env) -> None:
    """The server stops answering on one connection: the others deliver everything meanwhile; the hung message
    is in doubt after SMTP_TIMEOUT, never sent twice."""

    class HangsOnce(CaptureHandler):
        hung_at = None

        async def handle_DATA(self, server, session, envelope):
            if self.hung_at is None:
                self.hung_at = time.time()
                await asyncio.sleep(30)  # never answers within the client's timeout
            return await super().handle_DATA(server, session, envelope)

    server = smtp_server(handler=HangsOnce())
    sending(server)
    smtp_env({"SMTP_TIMEOUT": "3"})
    started = time.monotonic()
    report = run_send(project, recipients_file(project / "list.csv", 40), connections=3)
    elapsed = time.monotonic() - started
    handler = server.handler
    assert report.progress.sent == 39 and report.progress.in_doubt == 1
    assert len(handler.received) == 39 and set(received_counts(handler).values()) == {1}
    assert max(r.at for r in handler.received) < handler.hung_at + 2.5, "the others finished during the hang"
    assert elapsed < 3 * 3, "the hang ends at SMTP_TIMEOUT (3 s), not at the server's 30"
    (hung,) = [email for email, state in journal_rows(project).items() if state == "in-doubt"]
    assert received_counts(handler)[hung] == 0


class TooManyConnections(CaptureHandler):
    """Accepts at most `limit` connections at a time; MAIL on another one gets 421 and the connection closed."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.admitted: list = []
        self.refusals = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.admitted = [s for s in self.admitted if s.transport is not None and not s.transport.is_closing()]
        if server not in self.admitted:
            if len(self.admitted) >= self.limit:
                self.refusals += 1
                asyncio.get_running_loop().call_soon(server.transport.close)
                return "421 4.7.0 Too many connections from your address, try again later"
            self.admitted.append(server)
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.01)  # long enough a send for the server's refusals to be felt
        return await super().handle_DATA(server, session, envelope)


def test_too_many_connections_slows_the_send_down_and_everyone_gets_one(project: Path, smtp_server, sending) -> None:
    server = smtp_server(handler=TooManyConnections(limit=2))
    sending(server)
    notes = []
    send = Send(SAMPLE_EDITION, recipients_file(project / "list.csv", 240), open_workspace(project),
                SendOptions(connections=8, retry_delay=0.01))  # fmt: skip
    try:
        report = send.run(lambda progress: notes.append((progress.note, progress.connections_allowed)))
    finally:
        send.close()
    assert report.complete and report.progress.sent == 240
    assert set(received_counts(server.handler).values()) == {1} and len(received_counts(server.handler)) == 240
    assert any("the server asked to slow down" in note and "421 4.7.0" in note for note, _ in notes)
    assert min(allowed for _, allowed in notes) <= 2, "the connection count came down"
    assert server.handler.refusals < 40, "the sender backed off instead of hammering (129 without the backoff)"
    assert set(journal_rows(project).values()) == {"sent"}


def test_an_unreachable_server_is_reported_at_once_and_the_send_gives_up(project: Path, sending, smtp_env, cli):
    from conftest import free_port

    port = free_port()
    smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none",
              "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})  # fmt: skip
    recipients_file(project / "list.csv", 5)
    started = time.monotonic()
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes", "--connections", "2",
                 "--give-up-after", "1", "--retry-delay", "0.05", "--max-consecutive-failures", "1000")  # fmt: skip
    assert result.code == 75  # EX_TEMPFAIL: run it again later
    assert time.monotonic() - started < 10 * 1, "it gives up after --give-up-after (1 s), not retrying on"
    lines = result.err.splitlines()
    assert (
        lines[0] == f"newsletter: cannot connect to 127.0.0.1:{port}: connection refused (is the server running?); "
        "retrying"
    )
    assert lines[-1].startswith("newsletter: stopped: nothing delivered for 1 s while every attempt failed (last: ")
    assert nobody_charged(project)


def test_a_wrong_password_stops_at_once_without_the_resume_hint(project: Path, smtp_server, smtp_env, cli) -> None:
    server = smtp_server(tls="starttls", auth=True)
    smtp_env({**server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD="wrong"),
              "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})  # fmt: skip
    recipients_file(project / "list.csv", 5)
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes", "--connections", "3")
    assert result.code == 78  # EX_CONFIG: fix the credentials first
    assert result.err.strip().splitlines()[-1].startswith(f"newsletter: authentication failed for user {USERNAME}")
    assert "run the same command again" not in result.err
    assert not server.handler.received and nobody_charged(project)


@pytest.mark.parametrize(
    "change",
    [
        {"NEWSLETTER_UNSUBSCRIBE_SECRET": "another-secret-0123456789"},
        {"NEWSLETTER_FROM": "Someone Else <newsletter@example.org>"},
        {
            "toml": (
                'site_url = "https://news.seattle-neuro.example"',
                'site_url = "https://letters.seattle-neuro.example"',
            )
        },
    ],
    ids=["secret", "from-name", "unsubscribe-url"],
)
def test_resuming_with_a_different_sender_or_unsubscribe_link_is_refused(project, smtp_server, sending, smtp_env,
                                                                         cli, change) -> None:  # fmt: skip
    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 4)
    run_send(project, csv_path, limit=2)
    if "toml" in change:
        old, new = change["toml"]
        toml = project / "newsletter.toml"
        assert old in toml.read_text(encoding="utf-8")
        toml.write_text(toml.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    else:
        smtp_env(change)
    result = cli("send", SAMPLE_EDITION, "--recipients", csv_path, "--yes")
    assert result.code == 1 and "the edition changed after this send started" in result.err
    assert len(server.handler.received) == 2


@pytest.mark.parametrize("option", [("--rate", "nan"), ("--rate", "inf"), ("--per-hour", "0"), ("--connections", "x")])
def test_nonsense_limits_are_usage_errors_before_anything_is_created(project, smtp_server, sending, cli, option):
    sending(smtp_server())
    recipients_file(project / "list.csv", 2)
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes", *option)
    assert result.code == 2 and option[0] in result.err
    assert not (project / ".newsletter").exists()


def test_declining_leaves_no_journal(project: Path, smtp_server, sending) -> None:
    sending(smtp_server())
    recipients_file(project / "list.csv", 2)
    command = [sys.executable, "-m", "newsletter", "send", SAMPLE_EDITION, "--recipients", "list.csv"]
    run = subprocess.run(command, cwd=project, capture_output=True, text=True, input="n\n")
    assert run.returncode == 1
    assert not (project / ".newsletter").exists()


def test_journal_file_is_owner_only(project: Path, smtp_server, sending) -> None:
    import stat

    sending(smtp_server())
    run_send(project, recipients_file(project / "list.csv", 2))
    assert stat.S_IMODE(journal_path(project, SAMPLE_EDITION).stat().st_mode) == 0o600
    for folder in (project / ".newsletter", project / ".newsletter" / "journal"):  # mkdir's parents get 0755
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


@pytest.mark.parametrize("command", ["status", "send"])
def test_a_corrupt_journal_is_one_line_not_a_traceback(project: Path, smtp_server, sending, cli, command) -> None:
    sending(smtp_server())
    recipients_file(project / "list.csv", 2)
    path = journal_path(project, SAMPLE_EDITION)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage, not SQLite" * 100)
    args = ["--recipients", "list.csv", "--yes"] if command == "send" else []
    result = cli(command, SAMPLE_EDITION, *args)
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "back-pain.sqlite: cannot read the send journal: file is not a database" in result.err


def test_a_library_user_can_send_through_any_transport(project: Path, monkeypatch) -> None:
    """The send loop knows only the Transport interface: here the in-memory one, failing as real servers do."""
    from newsletter.base.errors import OutcomeUnknown, PermanentFailure, TemporaryFailure
    from newsletter.delivery.memory import MemoryTransport

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    memory = MemoryTransport(fail={
        "r00001@example.org": [TemporaryFailure("451 later", 451)],
        "r00002@example.org": [PermanentFailure("550 no such user", 550)],
        "r00003@example.org": [OutcomeUnknown("connection lost after the final dot")],
    })  # fmt: skip
    send = Send(SAMPLE_EDITION, recipients_file(project / "list.csv", 6), open_workspace(project),
                SendOptions(connections=2, retry_delay=0.01), transport=lambda: memory)  # fmt: skip
    try:
        report = send.run()
    finally:
        send.close()
    assert sorted(m.recipient.email for m in memory.sent) == [f"r0000{i}@example.org" for i in (0, 1, 4, 5)]
    assert (report.progress.sent, report.progress.failed, report.progress.in_doubt) == (4, 1, 1)
    assert memory.opened == 2


OLD_JOURNAL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE recipients (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL, fields TEXT NOT NULL,
    line INTEGER, message_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL DEFAULT '', not_before REAL NOT NULL DEFAULT 0, updated REAL NOT NULL DEFAULT 0);
CREATE TABLE slots (at REAL NOT NULL);
"""  # the layout newsletter 0.1 wrote: the whole list added at the start, no mailbox keys, no counts


def test_a_send_started_by_version_0_1_is_resumed_and_stays_archived(project, smtp_server, sending, cli) -> None:
    import hashlib
    import sqlite3

    from newsletter.base.model import Recipient
    from newsletter.edition.pipeline import message_factory
    from newsletter.web.archive import was_sent

    server = smtp_server()
    sending(server)
    csv_path = recipients_file(project / "list.csv", 5)
    factory = message_factory(SAMPLE_EDITION, open_workspace(project))
    people = [Recipient(f"r{i:05d}@example.org", f"Reader {i}") for i in range(5)]
    rows_print = hashlib.sha256(b"".join(f"{r.email}\0{r.name}\0[]\0".encode() for r in people)).hexdigest()
    path = journal_path(project, SAMPLE_EDITION)
    path.parent.mkdir(parents=True, mode=0o700)
    with sqlite3.connect(path) as db:
        db.executescript(OLD_JOURNAL)
        db.executemany("INSERT INTO recipients (id, email, name, fields, line, message_id, state) VALUES "
                       "(?, ?, ?, '{}', ?, ?, ?)",
                       [(i + 1, r.email, r.name, i + 2, factory.message_id(r), "sent" if i < 2 else "pending")
                        for i, r in enumerate(people)])  # fmt: skip
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("edition", factory.fingerprint()),
                       ("recipients", rows_print), ("recipients_file", str(csv_path)), ("started", "0")])  # fmt: skip
    assert was_sent(project, SAMPLE_EDITION), "the archive reads an old journal as it is"
    assert "sent 2" in cli("status", SAMPLE_EDITION).out
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes")
    assert result.code == 0, result.err
    assert "Resuming edition back-pain" in result.out and "3 to send, 0 suppressed, 2 already sent of 5" in result.out
    assert sorted(received_counts(server.handler)) == [f"r{i:05d}@example.org" for i in (2, 3, 4)]
    assert "pending 0, sending 0, sent 5" in cli("status", SAMPLE_EDITION).out


def test_a_partial_run_over_a_list_not_yet_read_whole_says_its_totals_are_estimates(project, smtp_server, sending,
                                                                                    cli) -> None:  # fmt: skip
    sending(smtp_server())
    recipients_file(project / "list.csv", 3000)  # more than one chunk: the run stops before reading it all
    result = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes", "--limit", "10")
    assert result.code == 75, result.err
    assert "sent 10, failed 0, in doubt 0, skipped 0 of about 3000;" in result.out
    assert "about 2990 recipient(s) still pending" in result.out
    finish = cli("send", SAMPLE_EDITION, "--recipients", "list.csv", "--yes")
    assert finish.code == 0 and "skipped 0 of 3000;" in finish.out, finish.out
