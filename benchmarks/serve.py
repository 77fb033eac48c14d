"""Benchmark: `newsletter serve` under a burst of one-click unsubscribes, and how fast the archive answers.

    python benchmarks/serve.py [--clients 50] [--seconds 5] [--rounds 3]

Starts the real `newsletter serve` (uvicorn) in a throw-away project, then `wrk` (a load generator in C; Debian's
`wrk`, which scripts/install-test-tools installs) with `--clients` connections, each kept alive and each sending
its next request as soon as the last one is answered (a closed loop: the hardest form of "N concurrent
clients"). Every request is a one-click POST as mail providers send it, for an address no other request names.
Prints the latency of those POSTs as wrk saw them (median and p99; each was durably written before its 200),
the rate, the server's CPU time per request, how many were lost (answered 200 but not in the suppression store
afterwards; must be 0), the time to serve the archive index and an edition's web version (median of 50
each, after the first), and one-click POSTs made while 1,000 other connections sit idle or half-sent.

The load generator is C so that what is measured is the server: a Python client with 50 threads on this
2-core machine adds its own GIL queueing to every latency it reports.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, free_port, installed_env, running

SECRET = "benchmark-secret-0123456789"
LIST_ID = "newsletter.seattle-neuro.example"  # what the sample's From address gives
WRK = "/usr/bin/wrk"
# each request takes the next path of paths.txt; every POST is the RFC 8058 body, form-urlencoded
WRK_SCRIPT = """
local paths = {}
for line in io.lines("paths.txt") do paths[#paths + 1] = line end
local next_path = 0
wrk.method = "POST"
wrk.body = "List-Unsubscribe=One-Click"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  next_path = next_path + 1
  return wrk.format(nil, paths[next_path])
end
"""

# sign-ups: each a new address from its own client address (serve runs with --proxy, so X-Forwarded-For is the
# client, as behind nginx), so the per-address and per-IP limits never refuse one
SIGNUP_SCRIPT = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local n, id = 0, 0
init = function(args)
  id = wrk.thread:get("id")
end
request = function()
  n = n + 1
  local client = string.format("%d.%d.%d.%d", 10 + id, math.floor(n / 65536) % 256, math.floor(n / 256) % 256,
                               n % 256)
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = client}
  return wrk.format("POST", "/subscribe", headers, "email=s" .. id .. "-" .. n .. "%40example.org&name=Reader")
end
"""


def stored(path: Path, table: str) -> int:
    """Rows of a table of one of the stores (0 when it is not there yet)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


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


def milliseconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def one_click_burst(work: Path, port: int, clients: int, seconds: int) -> dict[str, float]:
    """wrk's figures for a burst of distinct one-click POSTs: median and p99 ms, requests, non-2xx answers."""
    from newsletter.audience.tokens import unsubscribe_keys, unsubscribe_token

    keys = unsubscribe_keys(SECRET)
    count = 40_000 * seconds  # more than the server could answer: no address is ever repeated
    with (work / "paths.txt").open("w") as paths:
        paths.writelines(f"/unsubscribe/{unsubscribe_token(keys, LIST_ID, f'r{i:07d}@example.org')}\n"
                         for i in range(count))  # fmt: skip
    (work / "one-click.lua").write_text(WRK_SCRIPT)
    figures = wrk_burst(work, port, clients, seconds, "one-click.lua")
    if figures["requests"] >= count:
        raise SystemExit("wrk ran out of distinct addresses: raise the count")
    return figures


def wrk_burst(work: Path, port: int, clients: int, seconds: int, script: str, threads: int = 1) -> dict[str, float]:
    """wrk's figures for one burst of a script's requests: median and p99 ms, requests, non-2xx answers."""
    command = [WRK, f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", script,
               f"http://127.0.0.1:{port}"]  # fmt: skip
    out = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out)[1])
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        raise SystemExit(f"wrk: socket errors: {errors[1]}")
    return {"median": milliseconds(re.search(r"\s50%\s+(\S+)", out)[1]),
            "p99": milliseconds(re.search(r"\s99%\s+(\S+)", out)[1]),
            "requests": requests, "failed": int(failed[1]) if failed else 0}  # fmt: skip


def one_clicks_beside_idle_connections(port: int, idle: int, count: int) -> list[float]:
    """Seconds for each of `count` one-click POSTs (a new connection each, one at a time) while `idle`
    connections sit open, half of them having sent part of a request's headers (slowloris)."""
    import socket

    from newsletter.audience.tokens import unsubscribe_keys, unsubscribe_token

    keys = unsubscribe_keys(SECRET)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
    try:
        for number, connection in enumerate(held):
            if number % 2:
                connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        times = []
        for i in range(count):
            path = f"/unsubscribe/{unsubscribe_token(keys, LIST_ID, f'idle{i}@example.org')}"
            start = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", path, body=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            response = connection.getresponse()
            response.read()
            connection.close()
            assert response.status == 200, response.status
            times.append(time.perf_counter() - start)
        return times
    finally:
        for connection in held:
            connection.close()


def serving(work: Path, port: int, *extra: str) -> contextlib.AbstractContextManager[subprocess.Popen]:
    """The real `newsletter serve` in `work`, from empty stores, until the block ends."""
    shutil.rmtree(work / ".newsletter", ignore_errors=True)
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--drafts", *extra]
    return running(command, port, cwd=work, env=installed_env(NEWSLETTER_UNSUBSCRIBE_SECRET=SECRET))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.access(WRK, os.X_OK):
        raise SystemExit(f"{WRK} missing: apt-get install wrk (scripts/install-test-tools does)")
    sys.path.insert(0, str(REPO))
    from newsletter.audience.suppressions import store_path

    work = Path(tempfile.mkdtemp(prefix="newsletter-serve-bench-"))
    port = free_port()
    shutil.copytree(REPO / "issues", work / "issues")
    toml = (REPO / "newsletter.toml").read_text(encoding="utf-8").splitlines()
    (work / "newsletter.toml").write_text(
        "\n".join(line for line in toml if not line.startswith(("unsubscribe_url", "site_url")))
        + f'\nsite_url = "http://127.0.0.1:{port}"\n', encoding="utf-8")  # fmt: skip
    print(f"one-click POST, {args.clients} concurrent clients (wrk, closed loop), {args.seconds} s a round, each "
          "round from an empty store")  # fmt: skip
    print(f"{'round':>6} {'requests/s':>11} {'median ms':>10} {'p99 ms':>7} {'answered':>9} {'stored':>8} {'lost':>5} "
          f"{'server CPU/request':>19}")  # fmt: skip
    medians, p99s = [], []
    try:
        for number in range(1, args.rounds + 1):
            with serving(work, port) as server:
                cpu_before = server_cpu(server.pid)
                burst = one_click_burst(work, port, args.clients, args.seconds)
                cpu = server_cpu(server.pid) - cpu_before
                in_store = stored(store_path(work), "suppressions")
                if number == args.rounds:
                    index = timed_gets(port, "/", 50)
                    web = timed_gets(port, "/back-pain/", 50)
                    beside_idle = one_clicks_beside_idle_connections(port, 1000, 50)
            answered = burst["requests"] - burst["failed"]
            medians.append(burst["median"])
            p99s.append(burst["p99"])
            rate = burst["requests"] / args.seconds
            lost = max(0, answered - in_store)
            print(f"{number:>6} {rate:>11,.0f} {burst['median']:>10.2f} {burst['p99']:>7.1f} {answered:>9,} "
                  f"{in_store:>8,} {lost:>5} {cpu / burst['requests'] * 1e6:>16.0f} µs", flush=True)  # fmt: skip
        print(f"median of rounds: median {statistics.median(medians):.2f} ms, p99 {statistics.median(p99s):.1f} ms")
        print(f"archive index: median {statistics.median(index) * 1000:.1f} ms; web version of back-pain: median "
              f"{statistics.median(web) * 1000:.1f} ms (cached render)")  # fmt: skip
        signup_rounds(work, port, args)
        print(f"one-click beside 1,000 idle connections (half of them slowloris): median "
              f"{statistics.median(beside_idle) * 1000:.1f} ms, slowest of 50 {max(beside_idle) * 1000:.1f} ms "
              "(target: under 100 ms)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def signup_rounds(work: Path, port: int, args: argparse.Namespace) -> None:
    """Sign-up POSTs (each a new address, recorded with its queued confirmation mail before its answer) under
    the same load as the one-clicks; none may be lost (answered 200 but not in the subscriber store)."""
    from newsletter.audience.subscribers import store_path as subscribers

    (work / "signup.lua").write_text(SIGNUP_SCRIPT)
    medians = []
    print(f"sign-up POST, {args.clients} concurrent clients, each a new address (target: median 5 ms or less, "
          "0 lost)")  # fmt: skip
    for number in range(1, args.rounds + 1):
        with serving(work, port, "--proxy"):
            burst = wrk_burst(work, port, args.clients, args.seconds, "signup.lua", threads=2)
            answered = burst["requests"] - burst["failed"]
            in_store = stored(subscribers(work), "subscribers")
        medians.append(burst["median"])
        print(f"{number:>6} {burst['requests'] / args.seconds:>11,.0f} {burst['median']:>10.2f} {burst['p99']:>7.1f} "
              f"{answered:>9,} {in_store:>8,} {max(0, answered - in_store):>5}", flush=True)  # fmt: skip
    print(f"sign-up median of rounds: {statistics.median(medians):.2f} ms")


if __name__ == "__main__":
    main()
