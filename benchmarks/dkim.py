"""Benchmark: what DKIM signing costs, per message and for whole commands, with each key type and without.

    python benchmarks/dkim.py [--recipients 10000]

Prints, in one run: the signing cost per message of the sample edition (about 15 KB) for RSA-2048 and Ed25519;
then `export` and a loopback `newsletter send --connections 4` (against Postfix's smtp-sink) of the same
recipients with DKIM off, RSA-2048 and Ed25519, side by side.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import EDITION, REPO, free_port, installed_env, running, smtp_sink


def command(work: Path, env: dict[str, str], *args: str) -> float:
    shutil.rmtree(work / ".newsletter", ignore_errors=True)
    shutil.rmtree(work / "out", ignore_errors=True)
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    count = parser.parse_args().recipients
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="newsletter-dkim-bench-"))
    port = free_port()
    with running(smtp_sink(port), port):
        measure(work, port, count)


def measure(work: Path, port: int, count: int) -> None:
    from newsletter.base.dkim import DKIMSigner, generate_key, load_key
    from newsletter.base.model import Recipient
    from newsletter.base.workspace import open_workspace
    from newsletter.edition.compose import MessageFactory
    from newsletter.edition.pipeline import render_checked

    try:
        shutil.copytree(REPO / "issues", work / "issues")
        shutil.copy(REPO / "newsletter.toml", work / "newsletter.toml")
        with (work / "list.csv").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["email", "name"]] + [[f"r{i}@example.org", f"R {i}"] for i in range(count)])
        keys = {kind: generate_key(kind, f"s{kind}", "example.org", work / "keys")[0] for kind in ("rsa", "ed25519")}
        factory = MessageFactory(render_checked(EDITION, open_workspace(work)))
        message = factory.compose(Recipient("reader@example.org", "Reader")).data
        print(f"signing one message of {len(message):,} bytes (median of 2,000):")
        for kind, path in keys.items():
            signer = DKIMSigner(load_key(str(path), f"s{kind}", "example.org"))
            times = []
            for _ in range(2000):
                start = time.perf_counter()
                signer.sign(message)
                times.append(time.perf_counter() - start)
            print(f"  {kind:8} {statistics.median(times) * 1000:.3f} ms")
        base = installed_env(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_SECURITY="none",
                             NEWSLETTER_UNSUBSCRIBE_SECRET="benchmark-key-0123456789")  # fmt: skip
        settings = {"off": {}, **{kind: {"DKIM_PRIVATE_KEY_FILE": str(path), "DKIM_SELECTOR": f"s{kind}"}
                                  for kind, path in keys.items()}}  # fmt: skip
        print(f"\nwhole commands, {count:,} recipients, messages/s:")
        print(f"{'DKIM':>8} {'export':>8} {'send (loopback, 4 connections)':>32}")
        for name, extra in settings.items():
            env = {**base, **extra}
            export = command(work, env, "export", EDITION, "--recipients", "list.csv", "--out", "out")
            send = command(work, env, "send", EDITION, "--recipients", "list.csv", "--yes", "--connections", "4")
            print(f"{name:>8} {count / export:>8,.0f} {count / send:>32,.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
