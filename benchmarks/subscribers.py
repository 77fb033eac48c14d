"""Benchmark: the subscriber store at the sizes publishers bring to it.

    python benchmarks/subscribers.py [--import-rows 100000] [--store 1000000]

- import: `newsletter subscribers import` of a CSV of --import-rows rows, the whole command timed (target: 100,000
  in 5 s or less);
- send from the store: `newsletter send EDITION --yes` without --recipients, from a store of --store confirmed
  subscribers, against Postfix's smtp-sink on loopback: seconds from the command's start to the first message
  the sink accepted (target: 5 s or less), and the peak memory of that run; beside it, in the same run, the same
  send from a CSV of the same list (--recipients), the path the store's send is built on.
The sign-up POST figures are in benchmarks/serve.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from common import EDITION, REPO, free_port, running, smtp_sink
from scale import Workspace, finish, wait_for


def timed(command: list[str], space: Workspace, port: int) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=space.folder, env=space.env(port), check=True, capture_output=True)
    return time.perf_counter() - started


def fill_store(space: Workspace, count: int) -> None:
    """`count` confirmed subscribers, written straight into the store (the import command is measured apart)."""
    sys.path.insert(0, str(REPO))
    from newsletter.audience.subscribers import Consent, SubscriberStore, store_path

    with SubscriberStore(store_path(space.folder)) as store:
        for start in range(0, count, 50_000):
            rows = [(f"r{i:08d}@example.org", f"Reader {i}", {}) for i in range(start, min(start + 50_000, count))]
            store.add_many(rows, Consent("import", text="benchmark"), confirmed=True)


def first_message(space: Workspace, port: int, *extra: str) -> tuple[float, float]:
    """Seconds from the start of a send to the sink's first message, and the run's peak MB (stopped then)."""
    for leftover in (space.journal, space.folder / ".newsletter" / "snapshots" / f"{EDITION}.csv"):
        for path in leftover.parent.glob(leftover.name + "*"):
            path.unlink()
    command = space.command("send", EDITION, "--yes", *extra)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=space.folder, env=space.env(port), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    first = wait_for(lambda: space.sent() > 0, "the first message", 120)
    process.send_signal(signal.SIGINT)
    _, peak = finish(process)
    return first - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--store", type=int, default=1_000_000)
    args = parser.parse_args()
    importing = Workspace(args.import_rows)
    try:
        seconds = timed(importing.command("subscribers", "import", "list.csv", "--source", "benchmark",
                                          "--confirmed"), importing, 9)  # fmt: skip
        print(f"import of {args.import_rows:,} subscribers: {seconds:.2f} s (target: 100,000 in 5 s or less)")
    finally:
        importing.close()
    space = Workspace(args.store)
    try:
        fill_store(space, args.store)
        port = free_port()
        with running(smtp_sink(port), port):
            store_s, store_mb = first_message(space, port)
            csv_s, csv_mb = first_message(space, port, "--recipients", "list.csv")
        print(f"send to a store of {args.store:,} confirmed subscribers: first message after {store_s:.2f} s, peak "
              f"{store_mb:.0f} MB (target: 5 s or less); from the same list as a CSV (--recipients): "
              f"{csv_s:.2f} s, peak {csv_mb:.0f} MB")  # fmt: skip
    finally:
        space.close()


if __name__ == "__main__":
    if not os.access("/usr/sbin/smtp-sink", os.X_OK):
        raise SystemExit("smtp-sink missing: apt-get install postfix (scripts/install-test-tools does)")
    main()
