"""What the benchmarks share: the repository, the sample edition, free ports and sinks that start and stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EDITION = "back-pain"
SINK = "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def installed_env(**settings: str) -> dict[str, str]:
    """The environment for a `newsletter` command, plus `settings`. Its bytecode is cached as in an installed
    package (pip compiles on install): a PYTHONDONTWRITEBYTECODE inherited from a sandbox would recompile every
    edited module on each run, about 50 ms."""
    inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**inherited, **settings}


@contextlib.contextmanager
def running(command: list[str], port: int, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Start a server and wait until it accepts connections; stop it afterwards."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"{command[0]} did not start")
        yield process
    finally:
        process.terminate()
        process.wait()


def smtp_sink(port: int) -> list[str]:
    """Postfix's smtp-sink on loopback (Debian's postfix package; scripts/install-test-tools installs it)."""
    return [SINK, "-u", "nobody", f"127.0.0.1:{port}", "1024"]
