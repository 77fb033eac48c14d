"""Benchmark: `newsletter bounces` over a Maildir and an mbox of N reports, as a cron job meets them.

    python benchmarks/bounces.py [--sizes 1000 20000 100000]

Makes a throw-away newsletter with a send journal, fills a Maildir (new/) and an mbox with N delivery status
notifications addressed to VERP return paths, runs the real command on each, and prints messages per second and
the command's peak resident memory (from the kernel's accounting of the child process). Targets (issue 18):
20,000 Maildir messages in 60 s or less, 100,000 in one mbox in 5 minutes or less, memory flat (under 100 MB).
"""

from __future__ import annotations

import argparse
import mailbox
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, installed_env

SECRET = "benchmark-key-0123456789"


def report(to: str, recipient: str, number: int) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        f"Message-ID: <dsn-{number}@mx.example.net>\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 no such user {recipient}\r\n\r\n--B--\r\n"
    ).encode()


def newsletter(work: Path, count: int) -> list[bytes]:
    """A newsletter in `work` whose sample edition went to `count` readers; their bounce reports."""
    sys.path.insert(0, str(REPO))
    from newsletter.audience.recipients import Position
    from newsletter.audience.tokens import unsubscribe_keys, verp_tag
    from newsletter.base.model import Recipient
    from newsletter.delivery.journal import JournalStore, journal_path

    shutil.copytree(REPO / "issues", work / "issues")
    toml = (REPO / "newsletter.toml").read_text(encoding="utf-8")
    (work / "newsletter.toml").write_text(toml + 'bounce_address = "bounces@seattle-neuro.example"\n')
    rows = [(Recipient(f"r{i}@example.org"), f"r{i}@example.org", f"<{i}@example.org>") for i in range(count)]
    with JournalStore(journal_path(work, "back-pain")) as journal:
        journal.start("e", "r", work / "list.csv")
        journal.add(rows, Position(0, count + 1), read_all=True)
        journal._db.execute("UPDATE recipients SET state = 'sent'")
    keys = unsubscribe_keys(SECRET)
    list_id = "newsletter.seattle-neuro.example"
    return [report(f"bounces+{verp_tag(keys, list_id, 'back-pain', i + 1)}@seattle-neuro.example",
                   f"r{i}@example.org", i) for i in range(count)]  # fmt: skip


def run(work: Path, *source: str) -> tuple[float, float]:
    """Seconds and the peak resident MB of one `newsletter bounces` run."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURED, sys.executable, "-m", "newsletter", "bounces", *source],
                          cwd=work, env=installed_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET), capture_output=True,
                          text=True)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"newsletter bounces failed: {done.stderr.strip()[-500:]}")
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1024


# runs the command as its child and prints the child's peak resident KB: one fresh high-water mark per run
MEASURED = """import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if done.returncode == 0 else sys.exit(done.returncode))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000, 100000])
    args = parser.parse_args()
    print(f"{'messages':>9} {'Maildir s':>10} {'msg/s':>7} {'peak MB':>8}   {'mbox s':>8} {'msg/s':>7} {'peak MB':>8}")
    for count in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="newsletter-bounces-bench-"))
        try:
            reports = newsletter(work, count)
            box = mailbox.Maildir(work / "Maildir", create=True)
            for data in reports:
                box.add(data)
            maildir_s, maildir_mb = run(work, "--maildir", "Maildir")
            for store in (work / ".newsletter").glob("suppressions.sqlite*"):
                store.unlink()
            mbox = mailbox.mbox(work / "bounces.mbox")
            for data in reports:
                mbox.add(data)
            mbox.close()
            mbox_s, mbox_mb = run(work, "--mbox", "bounces.mbox")
            print(f"{count:>9,} {maildir_s:>10.1f} {count / maildir_s:>7,.0f} {maildir_mb:>8.0f}   "
                  f"{mbox_s:>8.1f} {count / mbox_s:>7,.0f} {mbox_mb:>8.0f}", flush=True)  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
