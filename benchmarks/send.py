"""Benchmark: `newsletter send` throughput against Postfix's smtp-sink, beside the references, in one run.

    python benchmarks/send.py [--recipients 10000] [--profile]

Prints messages per second for: Postfix's `smtp-source -s 4` (the reference load generator), plain smtplib with
4 reused connections sending the same pre-built messages, the `mailmerge` CLI (if installed; it opens a
connection per message, so it runs on a 500-message slice), and `newsletter send --connections 4` with its
durable journal. Needs Debian's `postfix` package for /usr/sbin/smtp-sink and smtp-source (no daemon).
`--profile` also runs the send in-process under cProfile and prints where the time goes.
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


def mailmerge_reference(work: Path, port: int, template: bytes, count: int) -> float | None:
    mailmerge = shutil.which("mailmerge") or str(Path(sys.executable).with_name("mailmerge"))
    if not Path(mailmerge).exists():
        return None
    folder = work / "mailmerge"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--mailmerge", type=int, default=500, help="messages for the mailmerge reference")
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
        print(f"sink: Postfix smtp-sink on 127.0.0.1:{port}; message size {size:,} bytes; {count:,} recipients")

        start = time.perf_counter()
        subprocess.run([SOURCE, "-s", "4", "-m", str(count), "-l", str(size), "-f", "newsletter@example.org",
                        "-t", "reader@example.org", f"127.0.0.1:{port}"], check=True)  # fmt: skip
        source = time.perf_counter() - start
        print(f"reference smtp-source -s 4:              {rate(count, source)}")
        plain = smtplib_reference(port, messages)
        print(f"reference smtplib, 4 reused connections:  {rate(count, plain)}")
        slice_ = min(args.mailmerge, count)
        merged = mailmerge_reference(work, port, messages[0], slice_)
        if merged is None:
            print("reference mailmerge:                       not installed (pip install mailmerge)")
        else:
            print(f"reference mailmerge ({slice_:,} messages):   {rate(slice_, merged)}")

        env = {**os.environ, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none",
               "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark"}  # fmt: skip
        command = [sys.executable, "-m", "newsletter", "send", EDITION, "--recipients", "list.csv", "--yes",
                   "--connections", "4"]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        ours = time.perf_counter() - start
        if run.returncode != 0:
            raise SystemExit(run.stderr)
        print(f"newsletter send --connections 4 (whole command, journal included): {rate(count, ours)}")
        print(f"  its own summary: {run.stdout.strip().splitlines()[-1]}")
        print(f"  vs smtp-source: {source / ours:.0%}; vs mailmerge: "
              + (f"{(slice_ / merged) and (count / ours) / (slice_ / merged):.0f}x" if merged else "n/a"))  # fmt: skip
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
