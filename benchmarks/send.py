"""Benchmark: `newsletter send` throughput against Postfix's smtp-sink, beside the references, in one run.

    python benchmarks/send.py [--recipients 10000] [--rounds 3] [--mailmerge 2000] [--profile]

Prints messages per second for: Postfix's `smtp-source -s 4` (the reference load generator), plain smtplib with
4 reused connections sending the same pre-built messages, the `mailmerge` CLI (`pip install mailmerge`; it
opens a connection per message, so all 10,000 take a minute per round), and the whole `newsletter send
--connections 4` command with its durable journal, from a fresh journal each time. Each round measures all four
one after the other, and the ratios are taken within a round; this machine's figures vary by 20% from run to
run, so several rounds and their median are printed. Needs Debian's `postfix` package for /usr/sbin/smtp-sink
and smtp-source (no daemon). `--profile` also runs the send in-process under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EDITION = "back-pain"
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink(port: int) -> subprocess.Popen:
    sink = subprocess.Popen([SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    raise SystemExit("smtp-sink did not start")


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f} messages/s  ({count:,} in {seconds:.2f} s)"


def smtplib_reference(port: int, messages: list[bytes], connections: int = 4) -> float:
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
    return time.perf_counter() - start


def mailmerge_reference(work: Path, port: int, template: bytes, count: int, fresh: bool) -> float | None:
    mailmerge = shutil.which("mailmerge") or str(Path(sys.executable).with_name("mailmerge"))
    if not Path(mailmerge).exists():
        return None
    folder = work / "mailmerge"
    if fresh:
        folder.mkdir()
        headers, body = template.split(b"\r\n\r\n", 1)
        kept = [h for h in headers.split(b"\r\n") if not h.lower().startswith((b"to:", b" "))]
        (folder / "template.txt").write_bytes(
            b"TO: {{email}}\n" + b"\n".join(kept) + b"\n\n" + body.replace(b"\r\n", b"\n")
        )
        with (folder / "database.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["email"]] + [[f"reader{i}@example.org"] for i in range(count)])
        (folder / "server.conf").write_text(
            f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nsecurity = Never\nusername = None\nratelimit = 0\n"
        )
    command = [mailmerge, "--no-dry-run", "--no-limit", "--output-format", "raw", "--template", "template.txt",
               "--database", "database.csv", "--config", "server.conf"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def smtp_source_reference(port: int, count: int, size: int) -> float:
    start = time.perf_counter()
    subprocess.run([SOURCE, "-s", "4", "-m", str(count), "-l", str(size), "-f", "newsletter@example.org",
                    "-t", "reader@example.org", f"127.0.0.1:{port}"], check=True)  # fmt: skip
    return time.perf_counter() - start


def newsletter_send(work: Path, env: dict[str, str]) -> tuple[float, str]:
    """The whole `newsletter send --connections 4` command, from a fresh journal; returns (seconds, summary)."""
    shutil.rmtree(work / ".newsletter", ignore_errors=True)
    command = [sys.executable, "-m", "newsletter", "send", EDITION, "--recipients", "list.csv", "--yes",
               "--connections", "4"]  # fmt: skip
    start = time.perf_counter()
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    return seconds, run.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="measure everything this many times, interleaved")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--mailmerge", type=int, help="messages for mailmerge (default: all; 2000 is quicker)")
    args = parser.parse_args()
    count = args.recipients
    for tool in (SINK, SOURCE):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} missing: apt-get install postfix (scripts/install-test-tools does)")
    work = Path(tempfile.mkdtemp(prefix="newsletter-send-bench-"))
    port = free_port()
    sink = start_sink(port)
    try:
        shutil.copytree(REPO / "issues", work / "issues")
        shutil.copy(REPO / "newsletter.toml", work / "newsletter.toml")
        with (work / "list.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name"])
            writer.writerows([f"reader{i}@example.org", f"Reader {i}"] for i in range(count))
        from newsletter.compose import MessageFactory
        from newsletter.model import Recipient
        from newsletter.pipeline import render_checked

        factory = MessageFactory(render_checked(EDITION, work))
        messages = [factory.compose(Recipient(f"reader{i}@example.org", f"Reader {i}")).data for i in range(count)]
        size = len(messages[0])
        slice_ = min(args.mailmerge or count, count)
        env = {**os.environ, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none",
               "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark"}  # fmt: skip
        print(f"sink: Postfix smtp-sink on 127.0.0.1:{port}; message size {size:,} bytes; {count:,} recipients; "
              f"mailmerge on {slice_:,} (it opens a connection per message); messages/s, whole commands")  # fmt: skip
        print(f"{'round':>5} {'smtp-source -s 4':>16} {'smtplib x4':>10} {'mailmerge':>9} {'newsletter':>10} "
              f"{'vs source':>9} {'vs mailmerge':>12}")  # fmt: skip
        results = []
        for number in range(1, args.rounds + 1):
            source = count / smtp_source_reference(port, count, size)
            plain = count / smtplib_reference(port, messages)
            merged_seconds = mailmerge_reference(work, port, messages[0], slice_, fresh=number == 1)
            merged = slice_ / merged_seconds if merged_seconds else float("nan")
            seconds, summary = newsletter_send(work, env)
            ours = count / seconds
            results.append((source, plain, merged, ours))
            print(f"{number:>5} {source:>16,.0f} {plain:>10,.0f} {merged:>9,.0f} {ours:>10,.0f} "
                  f"{ours / source:>9.0%} {ours / merged:>11.1f}x   ({summary})")  # fmt: skip
        if args.rounds > 1:
            source, plain, merged, ours = (statistics.median(column) for column in zip(*results, strict=True))
            print(f"{'median':>6}{source:>16,.0f} {plain:>10,.0f} {merged:>9,.0f} {ours:>10,.0f} "
                  f"{ours / source:>9.0%} {ours / merged:>11.1f}x")  # fmt: skip
        if args.profile:
            profile_send(work, env)
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(work, ignore_errors=True)


def profile_send(work: Path, env: dict[str, str]) -> None:
    """Run the same send in-process under cProfile (it is one process, one thread) and print where the time goes."""
    from newsletter.send import Send, SendOptions

    shutil.rmtree(work / ".newsletter", ignore_errors=True)
    os.environ.update(env)
    send = Send(EDITION, work / "list.csv", work, SendOptions(connections=4))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    report = profiler.runcall(send.run)
    elapsed = time.perf_counter() - start
    send.close()
    print(f"profiled in-process run: {rate(report.progress.sent, elapsed)} (slower: profiling costs)")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    print(out.getvalue().split("Ordered by")[1])


if __name__ == "__main__":
    main()
