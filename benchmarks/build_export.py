"""Benchmark: build the sample edition, and export it to 10,000 personalised recipients.

Prints the build time, the export time with the per-recipient cost (file writes included), and, measured in the
same run as a reference, the naive per-recipient build (a full EmailMessage with both parts quoted-printable
encoded each time) that the compose stage is designed to avoid.

    python benchmarks/build_export.py [--recipients 10000]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

from newsletter.base.model import Recipient
from newsletter.base.workspace import open_workspace
from newsletter.delivery.export import export_edition
from newsletter.edition.compose import MessageFactory
from newsletter.edition.pipeline import render_checked
from newsletter.publish import build_edition

REPO = Path(__file__).resolve().parent.parent
EDITION = "back-pain"


def timed(function, repeat: int = 1) -> float:
    """Median wall time of `repeat` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_message(factory: MessageFactory, recipient: Recipient) -> bytes:
    text, html = factory.personalise(recipient)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = factory.sender
    message["To"] = recipient.email
    message["Subject"] = factory.subject
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return bytes(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    count = parser.parse_args().recipients
    work = Path(tempfile.mkdtemp(prefix="newsletter-bench-"))
    try:
        shutil.copytree(REPO / "issues", work / "issues")
        shutil.copy(REPO / "newsletter.toml", work / "newsletter.toml")
        recipients_csv = work / "recipients.csv"
        with recipients_csv.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name"])
            writer.writerows([f"reader{i}@example.org", f"Reader Nº{i}"] for i in range(count))

        build = timed(lambda: build_edition(EDITION, open_workspace(work), work / "build"), repeat=5)
        print(f"build sample edition (load, render, inline, check, write 4 files): {build * 1000:.1f} ms (median of 5)")

        export = timed(lambda: export_edition(EDITION, recipients_csv, work / "export", open_workspace(work)))
        files = len(list((work / "export").glob("*.eml")))
        print(
            f"export {files:,} personalised recipients: {export:.2f} s total, "
            f"{export / files * 1000:.3f} ms per recipient (file write included; target < 1 ms)"
        )

        factory = MessageFactory(render_checked(EDITION, open_workspace(work)))
        sample = [Recipient(f"reader{i}@example.org", f"Reader Nº{i}") for i in range(1000)]
        fast = timed(lambda: [factory.compose(r) for r in sample]) / len(sample)
        naive = timed(lambda: [naive_message(factory, r) for r in sample]) / len(sample)
        print(f"compose only, per recipient: {fast * 1000:.3f} ms")
        print(f"reference, naive EmailMessage + quoted-printable per recipient: {naive * 1000:.3f} ms "
              f"({naive / fast:.0f}x slower)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
