"""Benchmark: a list of a million (or ten million) recipients on one machine.

    python benchmarks/scale.py [--n 1000000] [--connections 4] [--against REV] [--export-n N] [--skip kill,export]

Each figure comes from whole `newsletter` commands, run as a user runs them, against Postfix's `smtp-sink` on
loopback (the fastest server there is, so the sender's own costs show):

- send: peak resident memory (the process's own, from wait4); time from the command's start to the first message
  the sink accepted (the journal's count of sent rows polled every 2 ms); the rate over the first and over the
  last 100,000 messages (from the journal's per-row times); how long `status` takes (the whole command, and the
  same answer in-process, median of 5).
- resume: a send interrupted with Ctrl-C (SIGINT) halfway, then the same command again: time from its start to its
  first new message, and its peak memory.
- kill: exactly-once under `kill -9`, twice in the run (at a third and at two thirds), then a run to the end,
  against `relay_sink.py --log` (which writes down the recipient of every message it accepts): duplicates, and
  recipients neither received nor in doubt, must both be 0.
- export: peak memory and time per recipient of `newsletter export` (`--export-n`, default: the same N).
- `--against REV`: the send figures again for another revision (`git archive REV`), in the same run: the
  reference the figures are compared with.

Needs Debian's `postfix` package for /usr/sbin/smtp-sink (no daemon); `scripts/install-test-tools` installs it.
Uses about 1 KB of disk per recipient for the list and the journal, and the size of one message per exported
recipient.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import EDITION, REPO, free_port, installed_env, running, smtp_sink

RELAY_SINK = Path(__file__).resolve().parent / "relay_sink.py"
WINDOW = 100_000  # the rate is taken over the first and the last this many messages


class Workspace:
    """A throw-away newsletter folder with the sample edition and a list of N recipients, and the code to run."""

    def __init__(self, count: int, code: Path = REPO) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="newsletter-scale-"))
        self.code = code
        self.count = count
        compileall.compile_dir(code / "newsletter", quiet=1)
        shutil.copytree(REPO / "issues", self.folder / "issues")
        shutil.copy(REPO / "newsletter.toml", self.folder / "newsletter.toml")
        with (self.folder / "list.csv").open("w", encoding="utf-8") as handle:
            handle.write("email,name\n")
            for start in range(0, count, 100_000):
                rows = range(start, min(start + 100_000, count))
                handle.write("".join(f"r{i:08d}@example.org,Reader {i}\n" for i in rows))
        self.journal = self.folder / ".newsletter" / "journal" / f"{EDITION}.sqlite"

    def env(self, port: int) -> dict[str, str]:
        return installed_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_SECURITY="none", SMTP_TIMEOUT="30",
                             NEWSLETTER_UNSUBSCRIBE_SECRET="benchmark-key-0123456789",
                             PYTHONPATH=str(self.code))  # fmt: skip

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "newsletter", *args]

    def send_command(self, connections: int) -> list[str]:
        return self.command("send", EDITION, "--recipients", "list.csv", "--yes", "--connections", str(connections))

    def start(self, port: int, connections: int) -> subprocess.Popen:
        return subprocess.Popen(self.send_command(connections), cwd=self.folder, env=self.env(port),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def fresh(self) -> None:
        shutil.rmtree(self.folder / ".newsletter", ignore_errors=True)

    def sent(self) -> int:
        """Messages recorded as sent so far (0 before the journal exists)."""
        if not self.journal.exists():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(f"{self.journal.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
                try:
                    return db.execute("SELECT n FROM counts WHERE state = 'sent'").fetchone()[0]
                except (sqlite3.OperationalError, TypeError):  # an older journal: no counts kept
                    return db.execute("SELECT count(*) FROM recipients WHERE state = 'sent'").fetchone()[0]
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_for(condition, what: str, timeout: float, every: float = 0.002) -> float:
    """Poll until `condition()` holds; returns the time it did."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.perf_counter()


def finish(process: subprocess.Popen) -> tuple[int, float]:
    """Wait for the process: (exit status, peak resident memory in MB), from wait4's rusage of that process."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024


def rates(journal: Path, count: int) -> tuple[float, float]:
    """Messages per second over the first and the last WINDOW messages, from the journal's per-row times."""
    with contextlib.closing(sqlite3.connect(journal)) as db:
        times = [t for (t,) in db.execute("SELECT updated FROM recipients WHERE state = 'sent' ORDER BY updated")]
    span = min(WINDOW, len(times) - 1)
    return span / max(times[span] - times[0], 1e-9), span / max(times[-1] - times[-1 - span], 1e-9)


STATUS_IN_PROCESS = """
import statistics, sys, time
from pathlib import Path
from newsletter.delivery.journal import open_existing
times = []
for _ in range(5):
    start = time.perf_counter()
    with open_existing(Path(sys.argv[1]), sys.argv[2]) as journal:
        journal.counts(), journal.problems()
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def status_seconds(space: Workspace) -> tuple[float, float]:
    """`newsletter status`: the whole command (median of 5), and the same answer in-process (the journal's part,
    without the interpreter's start and imports)."""
    whole = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(space.command("status", EDITION), cwd=space.folder, env=space.env(0), check=True,
                       capture_output=True)  # fmt: skip
        whole.append(time.perf_counter() - start)
    inside = subprocess.run(
        [sys.executable, "-c", STATUS_IN_PROCESS, str(space.folder), EDITION],
        env=space.env(0),
        cwd=space.folder,
        capture_output=True,
        text=True,
    )  # fmt: skip (not this folder's code)
    if inside.returncode != 0:
        print(f"  (status in-process failed: {inside.stderr.strip().splitlines()[-1:]})", flush=True)
        return statistics.median(whole), float("nan")
    return statistics.median(whole), float(inside.stdout)


def send(space: Workspace, connections: int) -> dict[str, float]:
    """One whole send against smtp-sink: memory, time to first message, first and last rates, status."""
    port = free_port()
    space.fresh()
    with running(smtp_sink(port), port):
        started = time.perf_counter()
        process = space.start(port, connections)
        first = wait_for(lambda: space.sent() > 0, "the first message", 120)
        code, peak = finish(process)
        total = time.perf_counter() - started
    if code != 0 or space.sent() != space.count:
        raise SystemExit(f"the send ended with status {code}, {space.sent()} sent of {space.count}")
    first_rate, last_rate = rates(space.journal, space.count)
    status, status_inside = status_seconds(space)
    return {"peak MB": peak, "first message s": first - started, "total s": total, "first 100k /s": first_rate,
            "last 100k /s": last_rate, "status s": status, "status in-process s": status_inside}  # fmt: skip


def resume(space: Workspace, connections: int) -> dict[str, float]:
    """Ctrl-C halfway, then the same command: time to its first new message, and its memory."""
    port = free_port()
    space.fresh()
    with running(smtp_sink(port), port):
        process = space.start(port, connections)
        wait_for(lambda: space.sent() >= space.count // 2, "half the list", 3600, every=0.05)
        process.send_signal(signal.SIGINT)
        code, first_peak = finish(process)
        if code != 75:
            raise SystemExit(f"the interrupted send ended with status {code}, not 75")
        before = space.sent()
        started = time.perf_counter()
        process = space.start(port, connections)
        first = wait_for(lambda: space.sent() > before, "the resumed send's first message", 120)
        code, peak = finish(process)
    if code != 0 or space.sent() != space.count:
        raise SystemExit(f"the resumed send ended with status {code}, {space.sent()} sent of {space.count}")
    return {"resume first message s": first - started, "resume peak MB": max(first_peak, peak)}


def kill_twice(space: Workspace, connections: int) -> dict[str, float]:
    """kill -9 at a third and at two thirds, then run to the end; count what the sink received per recipient."""
    port = free_port()
    space.fresh()
    log = space.folder / "received.txt"
    log.unlink(missing_ok=True)
    sink = [sys.executable, str(RELAY_SINK), "--port", str(port), "--mean", "0", "--log", str(log)]
    with running(sink, port):
        for part in (1, 2):
            process = space.start(port, connections)
            wait_for(lambda part=part: space.sent() >= space.count * part // 3, f"{part}/3 of the list", 3600, 0.05)
            process.kill()
            finish(process)
        process = space.start(port, connections)
        code, _ = finish(process)
    received: dict[str, int] = {}
    with log.open(encoding="utf-8") as handle:
        for line in handle:
            received[line.strip()] = received.get(line.strip(), 0) + 1
    with contextlib.closing(sqlite3.connect(space.journal)) as db:
        states = dict(db.execute("SELECT email, state FROM recipients"))
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    lost = sum(1 for email, state in states.items() if state != "in-doubt" and email not in received)
    in_doubt = sum(1 for state in states.values() if state == "in-doubt")
    return {"kill: final exit (1: some in doubt)": code, "kill: recipients": len(states),
            "kill: duplicates": duplicates, "kill: lost": lost, "kill: in doubt": in_doubt}  # fmt: skip


def export(space: Workspace, count: int) -> dict[str, float]:
    """`newsletter export` of the first `count` recipients: memory and time per recipient."""
    with (space.folder / "list.csv").open(encoding="utf-8") as source, (space.folder / "part.csv").open("w") as part:
        for number, line in enumerate(source):
            if number > count:
                break
            part.write(line)
    out = space.folder / "out"
    started = time.perf_counter()
    process = subprocess.Popen(space.command("export", EDITION, "--recipients", "part.csv", "--out", str(out)),
                               cwd=space.folder, env=space.env(0), stdout=subprocess.DEVNULL)  # fmt: skip
    code, peak = finish(process)
    seconds = time.perf_counter() - started
    written = sum(1 for _ in os.scandir(out)) - 1
    shutil.rmtree(out, ignore_errors=True)
    if code != 0 or written != count:
        raise SystemExit(f"export ended with status {code}, {written} written of {count}")
    return {"export peak MB": peak, "export ms per recipient": seconds / count * 1000, "export n": count}


def reference(rev: str) -> Path:
    """The code of another revision, unpacked beside the work folder."""
    folder = Path(tempfile.mkdtemp(prefix="newsletter-reference-"))
    files = ["git", "archive", rev, "newsletter", "templates"]
    archive = subprocess.run(files, cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def show(title: str, figures: dict[str, float]) -> None:
    print(f"\n{title}", flush=True)
    for name, value in figures.items():
        print(f"  {name:<26} {value:>12,.3f}" if isinstance(value, float) else f"  {name:<26} {value:>12,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--against", help="a git revision to measure the send figures of, too")
    parser.add_argument("--export-n", type=int, help="recipients to export (default: --n)")
    parser.add_argument("--skip", default="", help="comma-separated: send, resume, kill, export")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    print(f"{args.n:,} recipients, {args.connections} connections, smtp-sink on loopback; "
          f"{time.strftime('%Y-%m-%d %H:%M')}", flush=True)  # fmt: skip
    space = Workspace(args.n)
    steps = {"send": lambda: send(space, args.connections), "resume": lambda: resume(space, args.connections),
             "kill": lambda: kill_twice(space, args.connections),
             "export": lambda: export(space, args.export_n or args.n)}  # fmt: skip
    titles = {
        "send": "send (this revision)",
        "resume": "resume after Ctrl-C halfway",
        "kill": "exactly once under kill -9 twice (relay_sink.py --mean 0 --log)",
        "export": "export",
    }
    try:
        for name, step in steps.items():
            if name not in skip:
                measure(titles[name], step)
    finally:
        space.close()
    if args.against:  # last: a reference that cannot run costs none of this revision's figures
        code = reference(args.against)
        other = Workspace(args.n, code)
        try:
            measure(f"send ({args.against}, the reference)", lambda: send(other, args.connections))
        finally:
            other.close()
            shutil.rmtree(code, ignore_errors=True)


def measure(title: str, step) -> None:
    """Run one step and show its figures; a step that fails says so and the others still run."""
    try:
        show(title, step())
    except (SystemExit, Exception) as error:
        print(f"\n{title}: FAILED: {error}", flush=True)


if __name__ == "__main__":
    main()
