"""Benchmark: `newsletter send` beside the reference senders, against a loopback sink and a relay-like sink.

    python benchmarks/send.py [relay] [loopback] [hang] [--rounds 3] [--mean 0.04] [--profile]

Every figure is messages per second for a whole command (ours: `newsletter send --connections C --yes` from a
fresh journal, start-up and durable journal included), measured one after the other in the same round against
the same sink, so ratios are taken within a round; the median of the rounds is printed last.

- relay: `benchmarks/relay_sink.py`, a sink that answers each message after an exponentially distributed delay
  (mean 40 ms), like a relay across a network; at 8 and 32 connections, 300 messages per connection. Reference:
  Postfix's `smtp-source -s C -d` (C sessions, each connection reused: the strongest form), and plain smtplib
  with C threads, connections reused, no journal.
- loopback: Postfix's `smtp-sink` on loopback, 4 connections, 10,000 recipients. Same references.
- hang: the relay sink with its first connection stuck after one message; prints the rate of the other
  connections during the hang, beside the same send without a hang.

Needs Debian's `postfix` package for /usr/sbin/smtp-sink and smtp-source (no daemon); `scripts/install-test-tools`
installs it. `--profile` runs one loopback send in-process under cProfile.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import csv
import io
import os
import pstats
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import EDITION, REPO, SINK, free_port, installed_env, running, smtp_sink

SOURCE = "/usr/sbin/smtp-source"
RELAY_SINK = Path(__file__).resolve().parent / "relay_sink.py"


def relay_sink(port: int, mean: float, hang: int = 0) -> list[str]:
    return [sys.executable, str(RELAY_SINK), "--port", str(port), "--mean", str(mean), "--hang-connection", str(hang)]


def smtp_source(port: int, count: int, size: int, connections: int) -> float:
    """Postfix's load generator: C sessions, each connection reused for its messages (-d)."""
    start = time.perf_counter()
    subprocess.run([SOURCE, "-s", str(connections), "-d", "-m", str(count), "-l", str(size),
                    "-f", "newsletter@example.org", "-t", "reader@example.org", f"127.0.0.1:{port}"],
                   check=True)  # fmt: skip
    return count / (time.perf_counter() - start)


def plain_smtplib(port: int, messages: list[bytes], connections: int) -> float:
    """C threads, one reused smtplib connection each, the same pre-built messages, no journal."""
    chunks = [messages[i::connections] for i in range(connections)]

    def worker(chunk: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for data in chunk:
                smtp.sendmail("newsletter@example.org", ["reader@example.org"], data)

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(messages) / (time.perf_counter() - start)


class Project:
    """A throw-away working folder with the sample edition and a recipients list of the size asked for."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-send-bench-"))
        compileall.compile_dir(REPO / "newsletter", quiet=1)
        shutil.copytree(REPO / "issues", self.folder / "issues")
        shutil.copy(REPO / "newsletter.toml", self.folder / "newsletter.toml")
        sys.path.insert(0, str(REPO))
        from newsletter.base.workspace import open_workspace
        from newsletter.edition.compose import MessageFactory
        from newsletter.edition.pipeline import render_checked

        self.factory = MessageFactory(render_checked(EDITION, open_workspace(self.folder)))

    def recipients(self, count: int) -> list[bytes]:
        """Write list.csv with `count` recipients; returns their messages as the references send them."""
        from newsletter.base.model import Recipient

        people = [Recipient(f"reader{i}@example.org", f"Reader {i}") for i in range(count)]
        with (self.folder / "list.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name"])
            writer.writerows([p.email, p.name] for p in people)
        return [self.factory.compose(person).data for person in people]

    def env(self, port: int, timeout: float = 30) -> dict[str, str]:
        return installed_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_SECURITY="none",
                             SMTP_TIMEOUT=str(timeout),
                             NEWSLETTER_UNSUBSCRIBE_SECRET="benchmark-key-0123456789")  # fmt: skip

    def send(self, port: int, count: int, connections: int) -> float:
        """The whole `newsletter send` command from a fresh journal, in messages per second."""
        shutil.rmtree(self.folder / ".newsletter", ignore_errors=True)
        command = [sys.executable, "-m", "newsletter", "send", EDITION, "--recipients", "list.csv", "--yes",
                   "--connections", str(connections)]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run(command, cwd=self.folder, env=self.env(port), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if run.returncode != 0 or f"sent {count}," not in run.stdout:
            raise SystemExit(f"newsletter send failed: {run.stdout}{run.stderr}")
        return count / seconds

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def compare(title: str, rounds: int, sink: list[str], port: int, project: Project, count: int, connections: int):
    """Rounds of smtp-source -d, plain smtplib and newsletter send against one sink; prints rows and medians."""
    messages = project.recipients(count)
    size = len(messages[0])
    print(f"\n{title}: {count:,} messages of {size:,} bytes, {connections} connections; messages/s")
    print(f"{'round':>6} {'smtp-source -d':>15} {'smtplib':>9} {'newsletter':>11} {'vs source':>10}")
    rows = []
    with running(sink, port):
        for number in range(1, rounds + 1):
            source = smtp_source(port, count, size, connections)
            plain = plain_smtplib(port, messages, connections)
            ours = project.send(port, count, connections)
            rows.append((source, plain, ours, ours / source))
            print(f"{number:>6} {source:>15,.0f} {plain:>9,.0f} {ours:>11,.0f} {ours / source:>9.2f}x", flush=True)
    medians = [statistics.median(column) for column in zip(*rows, strict=True)]
    print(f"{'median':>6} {medians[0]:>15,.0f} {medians[1]:>9,.0f} {medians[2]:>11,.0f} {medians[3]:>9.2f}x")


def hang(rounds: int, mean: float, project: Project, connections: int = 8, per_connection: int = 150) -> None:
    """One of C connections stuck after its first message: the rate of the others during the hang."""
    from newsletter.base.workspace import open_workspace
    from newsletter.delivery.send import Send, SendOptions

    count = connections * per_connection
    project.recipients(count)
    print(f"\nhang: relay sink (mean {mean * 1000:.0f} ms), {connections} connections, {count:,} messages; the "
          "first connection stops answering after one message (SMTP_TIMEOUT 10 s); messages/s")  # fmt: skip
    print(f"{'round':>6} {'no hang':>9} {'during the hang':>16} {'ratio':>6}")
    for number in range(1, rounds + 1):
        rates = []
        for stuck in (0, 1):
            port = free_port()
            with running(relay_sink(port, mean, stuck), port):
                shutil.rmtree(project.folder / ".newsletter", ignore_errors=True)
                os.environ.update(project.env(port, timeout=10))
                send = Send(
                    EDITION,
                    project.folder / "list.csv",
                    open_workspace(project.folder),
                    SendOptions(connections=connections),
                )
                marks: list[float] = []
                start = time.perf_counter()

                def watch(progress, marks=marks, start=start) -> None:
                    if not marks and progress.done >= count - 1:  # all but the stuck one
                        marks.append(time.perf_counter() - start)

                send.run(watch)
                send.close()
                rates.append((count - 1) / marks[0])
        print(f"{number:>6} {rates[0]:>9,.0f} {rates[1]:>16,.0f} {rates[1] / rates[0]:>6.2f}", flush=True)


def profile(project: Project, count: int = 10_000) -> None:
    """One loopback send in-process under cProfile (one process, one thread plus the commit thread)."""
    from newsletter.base.workspace import open_workspace
    from newsletter.delivery.send import Send, SendOptions

    project.recipients(count)
    port = free_port()
    with running(smtp_sink(port), port):
        shutil.rmtree(project.folder / ".newsletter", ignore_errors=True)
        os.environ.update(project.env(port))
        send = Send(EDITION, project.folder / "list.csv", open_workspace(project.folder), SendOptions(connections=4))
        profiler = cProfile.Profile()
        start = time.perf_counter()
        report = profiler.runcall(send.run)
        elapsed = time.perf_counter() - start
        send.close()
    print(f"\nprofiled in-process run: {report.progress.sent / elapsed:,.0f} messages/s (profiling slows it)")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    print(out.getvalue().split("Ordered by")[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="*", choices=["relay", "loopback", "hang", []], default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mean", type=float, default=0.04, help="the relay sink's mean reply delay, seconds")
    parser.add_argument("--per-connection", type=int, default=300, help="relay messages per connection")
    parser.add_argument("--recipients", type=int, default=10_000, help="loopback messages")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    modes = args.modes or ["relay", "loopback", "hang"]
    for tool in (SINK, SOURCE):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} missing: apt-get install postfix (scripts/install-test-tools does)")
    project = Project()
    try:
        if "relay" in modes:
            for connections in (8, 32):
                port = free_port()
                compare(f"relay (mean {args.mean * 1000:.0f} ms)", args.rounds, relay_sink(port, args.mean), port,
                        project, connections * args.per_connection, connections)  # fmt: skip
        if "loopback" in modes:
            port = free_port()
            compare("loopback smtp-sink", args.rounds, smtp_sink(port), port, project, args.recipients, 4)
        if "hang" in modes:
            hang(args.rounds, args.mean, project)
        if args.profile:
            profile(project, args.recipients)
    finally:
        project.close()


if __name__ == "__main__":
    main()
