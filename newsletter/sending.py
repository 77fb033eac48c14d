"""`newsletter send`: the plan, the confirmation, progress on a terminal or in a log, and an exit status that says
whether to run it again."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable

from .audience.suppressions import edition_warnings
from .base.errors import NewsletterError
from .base.workspace import Workspace
from .commands import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TEMPFAIL,
    current_workspace,
    edition_argument,
    edition_name,
    print_problem,
)


def cmd_send(args: argparse.Namespace) -> int:
    from .delivery.send import Send, SendOptions
    from .delivery.snapshot import subscriber_list

    options = SendOptions(
        connections=args.connections, rate=args.rate, per_hour=args.per_hour, resend_in_doubt=args.resend_in_doubt,
        max_consecutive_failures=args.max_consecutive_failures, retry_delay=args.retry_delay, limit=args.limit,
        give_up_after=args.give_up_after, verbose=args.verbose,
    )  # fmt: skip
    workspace, edition = current_workspace(), edition_argument(args.edition)
    recipients = args.recipients or subscriber_list(workspace, edition_name(edition, workspace))
    send = Send(edition, recipients, workspace, options=options, on_problem=print_problem)
    try:
        plan = send.plan(count=None if args.yes else True)  # --yes: a big list starts at once
        for warning in _edition_warnings(workspace):
            print(f"newsletter: warning: {warning}", file=sys.stderr)
        about = "" if plan.counted else "up to "
        checked = "" if plan.counted else " (each row checked as it is read)"
        counted = (f"{about}{plan.to_send} to send{checked}, {plan.suppressed} suppressed, {plan.sent} already sent"
                   + (f", {plan.failed} failed" if plan.failed else "")
                   + (f", {plan.in_doubt} in doubt" if plan.in_doubt else ""))  # fmt: skip
        if plan.pending == 0:
            print(f'Edition {plan.edition} "{plan.subject}" is complete: {counted} of {plan.total} recipient(s); '
                  "`newsletter status` shows how it went")  # fmt: skip
            return _send_exit(plan.failed, plan.in_doubt)
        print(
            f'{"Resuming" if plan.resuming else "Sending"} edition {plan.edition} "{plan.subject}": {counted} of '
            f"{about}{plan.total} recipient(s), via {plan.host}, {plan.connections} connection(s), rate {plan.rate}"
        )
        if plan.to_send and not args.yes and not _confirmed():  # with none to send, the run only records skips
            return EXIT_FAILED
        printer = _ProgressPrinter()
        report = send.run(printer)
        printer.finish()
    finally:
        send.close()
    done = report.progress
    about = "" if send.list_read else "about "  # rows not read yet may hold bad rows and duplicates
    print(f"sent {done.sent}, failed {done.failed}, in doubt {done.in_doubt}, skipped {done.skipped} "
          f"of {about}{done.total}; this run {done.sent_this_run} at {done.rate:.0f}/s")  # fmt: skip
    for note in report.notes:
        print(f"newsletter: {note}", file=sys.stderr)
    if report.interrupted:
        print("newsletter: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_TEMPFAIL
    if report.fatal:
        print(f"newsletter: {report.stop_reason}", file=sys.stderr)
        return EXIT_CONFIG
    if report.stop_reason:
        print(f"newsletter: {report.stop_reason}; run the same command again to resume", file=sys.stderr)
        return EXIT_TEMPFAIL
    if done.done < done.total:
        print(f"{about}{done.total - done.done} recipient(s) still pending; run the same command again to continue")
        return EXIT_TEMPFAIL
    print(f"edition {plan.edition} is complete")
    return _send_exit(done.failed, done.in_doubt)


def _edition_warnings(workspace: Workspace) -> list[str]:
    """Editions sent before with too many complaints or sender-side refusals, for the next send's plan."""
    from .delivery.journal import JournalReader, sent_editions

    warnings = []
    for path in sent_editions(workspace.root):
        with contextlib.suppress(NewsletterError), JournalReader(path) as journal:
            sent = journal.counts()["sent"]
            warnings += [f"edition {path.stem}: {w}" for w in edition_warnings(workspace.suppressions, path.stem, sent)]
    return warnings


def _send_exit(failed: int, in_doubt: int) -> int:
    """Non-zero while any recipient's delivery failed or is in doubt, so scripts notice."""
    return EXIT_FAILED if failed or in_doubt else EXIT_OK


def _confirmed() -> bool:
    """Ask on a terminal; with no terminal, refuse (a cron job or script must say --yes)."""
    if not sys.stdin.isatty():
        print("newsletter: not sending: no terminal to confirm on; add --yes to send", file=sys.stderr)
        return False
    answer = input("Send now? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        print("not sent")
        return False
    return True


class _ProgressPrinter:
    """A progress bar redrawn in place on a terminal. Elsewhere (cron, systemd) plain lines on stderr: one when
    the run starts, then one every 1,000 messages and at least every PLAIN_EVERY seconds, and a line whenever
    there is news (a connection problem, a slow-down), so a log shows a run is alive and what it meets."""

    PLAIN_EVERY = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.on_terminal = sys.stderr.isatty()
        self.clock = clock
        self.thousands: int | None = None
        self.last_line = -math.inf
        self.note = ""

    def __call__(self, progress) -> None:
        connections = (f" connections {progress.connections_allowed}/{progress.connections}"
                       if progress.connections_allowed < progress.connections else "")  # fmt: skip
        if self.on_terminal:
            width = 30
            filled = int(width * progress.done / max(progress.total, 1))
            eta = f"{progress.eta:.0f}s" if progress.eta is not None else "?"
            note = f" | {progress.note}" if progress.note else ""
            print(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {progress.done}/{progress.total} sent "
                  f"{progress.sent} failed {progress.failed} in doubt {progress.in_doubt} {progress.rate:.0f}/s "
                  f"ETA {eta}{connections}{note}", end="", file=sys.stderr, flush=True)  # fmt: skip
            return
        if progress.note != self.note:
            self.note = progress.note
            if progress.note:
                print(f"newsletter: {progress.note}", file=sys.stderr, flush=True)
        thousands = progress.done // 1000
        now = self.clock()
        if thousands != self.thousands or now - self.last_line >= self.PLAIN_EVERY:
            print(f"{progress.done}/{progress.total}: sent {progress.sent}, failed {progress.failed}, "
                  f"in doubt {progress.in_doubt}, {progress.rate:.0f}/s{connections}", file=sys.stderr,
                  flush=True)  # fmt: skip
            self.last_line = now
        self.thousands = thousands

    def finish(self) -> None:
        if self.on_terminal:
            print(file=sys.stderr)
