"""A benchmark sink that behaves like a relay across a network: each message is answered after a random delay.

    python benchmarks/relay_sink.py --port 2525 [--mean 0.04] [--seed 1] [--hang-connection N] [--log FILE]

Real relays (an ESP's SMTP endpoint, a Postfix on another host) scan and queue before they answer the final dot,
so replies come slowly and unevenly. This sink answers everything else at once and each DATA after an
exponentially distributed delay (mean `--mean` seconds), offers PIPELINING, and keeps nothing. With
`--hang-connection N`, the N-th SMTP session (counted at EHLO, so readiness probes do not count) stops answering
after its first message (a stuck
server process), to show whether the other connections keep their pace. asyncio and a plain Protocol, not
aiosmtpd: aiosmtpd caps a client at about 300 messages/s here, which would hide the senders' differences.
With `--log FILE`, the recipient of every message it accepts is appended to FILE, one per line (written out when
the sink stops, SIGTERM included): what an exactly-once check counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
from pathlib import Path


class RelaySession(asyncio.Protocol):
    def __init__(self, sink: RelaySink) -> None:
        self.sink = sink
        self.number = 0  # given at EHLO
        self.buffer = b""
        self.in_data = False
        self.messages = 0
        self.hung = False
        self.recipient = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.write(b"220 relay-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        if self.hung:
            return
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                self.messages += 1
                self.sink.accepted(self.recipient)
                if self.number == self.sink.hang_connection and self.messages == 1:
                    self.hung = True  # never answer again on this connection
                    return
                delay = self.sink.random.expovariate(1 / self.sink.mean) if self.sink.mean else 0.0
                asyncio.get_running_loop().call_later(delay, self.reply, b"250 2.0.0 queued\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if line[:8].upper() == b"RCPT TO:":
                self.recipient = line[8:].strip(b" <>")
            self.command(line.upper())

    def command(self, line: bytes) -> None:
        if line.startswith((b"EHLO", b"HELO")) and not self.number:
            self.sink.sessions += 1
            self.number = self.sink.sessions
        if line.startswith(b"EHLO"):
            self.reply(b"250-relay-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif line.startswith(b"HELO"):
            self.reply(b"250 relay-sink\r\n")
        elif line.startswith(b"DATA"):
            self.in_data = True
            self.reply(b"354 go ahead\r\n")
        elif line.startswith(b"QUIT"):
            self.reply(b"221 bye\r\n")
            self.transport.close()
        else:  # MAIL, RCPT, RSET, NOOP
            self.reply(b"250 2.0.0 ok\r\n")

    def reply(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


class RelaySink:
    def __init__(self, mean: float, seed: int, hang_connection: int, log: Path | None = None) -> None:
        self.mean = mean
        self.random = random.Random(seed)
        self.hang_connection = hang_connection
        self.sessions = 0
        self.messages = 0
        self.log = log.open("ab", buffering=1 << 20) if log else None

    def accepted(self, recipient: bytes) -> None:
        self.messages += 1
        if self.log is not None:
            self.log.write(recipient + b"\n")

    def session(self) -> RelaySession:
        return RelaySession(self)


async def serve(host: str, port: int, sink: RelaySink) -> None:
    server = await asyncio.get_running_loop().create_server(sink.session, host, port, backlog=512)
    print(f"relay-sink listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mean", type=float, default=0.04, help="mean delay before the reply to DATA, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hang-connection", type=int, default=0, help="this SMTP session (1-based) hangs")
    parser.add_argument("--log", type=Path, help="append the recipient of each accepted message to this file")
    args = parser.parse_args()
    sink = RelaySink(args.mean, args.seed, args.hang_connection, args.log)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C, so the log is written out
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.host, args.port, sink))
    finally:
        if sink.log is not None:
            sink.log.close()


if __name__ == "__main__":
    main()
