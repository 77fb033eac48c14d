"""Benchmark: `newsletter serve` under a burst of one-click unsubscribes, and how fast the archive answers.

    python benchmarks/serve.py [--clients 50] [--requests 2000]

Starts the real `newsletter serve` (uvicorn) in a throw-away project, then `--clients` threads, each on its own
kept-alive connection, POST `List-Unsubscribe=One-Click` for distinct addresses as mail providers do. Prints
the latency of those POSTs (median, p99, as the clients saw them, each one durably written before its 200), how
many were lost (answered 200 but not in the suppression store afterwards; must be 0), and the time to serve the
archive index and an edition's web version (median of 50 each, after the first).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, free_port

SECRET = "benchmark-secret"


def server_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_gets(port: int, path: str, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count + 1):
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, (path, response.status)
        times.append(time.perf_counter() - start)
    connection.close()
    return times[1:]  # the first one renders and caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from newsletter.suppressions import SuppressionStore, store_path
    from newsletter.tokens import unsubscribe_keys, unsubscribe_token

    work = Path(tempfile.mkdtemp(prefix="newsletter-serve-bench-"))
    port = free_port()
    shutil.copytree(REPO / "issues", work / "issues")
    toml = (REPO / "newsletter.toml").read_text(encoding="utf-8").splitlines()
    (work / "newsletter.toml").write_text(
        "\n".join(line for line in toml if not line.startswith("unsubscribe_url"))
        + f'\nsite_url = "http://127.0.0.1:{port}"\n', encoding="utf-8")  # fmt: skip
    env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET}
    server = subprocess.Popen([sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--drafts"],
                              cwd=work, env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        server.stdout.readline()
        for _ in range(200):  # the line comes as uvicorn binds; wait until it accepts
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        keys = unsubscribe_keys(SECRET)
        list_id = "news.seattle-neuro.example.org"
        paths = [f"/unsubscribe/{unsubscribe_token(keys, list_id, f'r{i:06d}@example.org')}"
                 for i in range(args.requests)]  # fmt: skip
        chunks = [paths[i :: args.clients] for i in range(args.clients)]
        latencies: list[float] = []
        answered: list[int] = []
        lock = threading.Lock()
        body = b"List-Unsubscribe=One-Click"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}

        def client(chunk: list[str]) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine, ok = [], 0
            for path in chunk:
                start = time.perf_counter()
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                mine.append(time.perf_counter() - start)
                ok += response.status == 200
            connection.close()
            with lock:
                latencies.extend(mine)
                answered.append(ok)

        cpu_before = server_cpu(server.pid)
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(client, chunks))
        elapsed = time.perf_counter() - start
        cpu = server_cpu(server.pid) - cpu_before
        with SuppressionStore(store_path(work)) as store:
            stored = len(store.keys())
        latencies.sort()
        median = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        print(f"one-click POST, {args.clients} concurrent clients, {args.requests:,} requests in {elapsed:.2f} s "
              f"({args.requests / elapsed:,.0f}/s): median {median:.1f} ms, p99 {p99:.1f} ms; answered 200: "
              f"{sum(answered):,}; in the store: {stored:,}; lost: {sum(answered) - stored}; the server's CPU per "
              f"request: {cpu / args.requests * 1e6:.0f} µs")  # fmt: skip
        index = timed_gets(port, "/", 50)
        web = timed_gets(port, "/back-pain/", 50)
        print(f"archive index: median {statistics.median(index) * 1000:.1f} ms; web version of back-pain: median "
              f"{statistics.median(web) * 1000:.1f} ms (cached render)")  # fmt: skip
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
