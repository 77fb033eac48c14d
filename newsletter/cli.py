"""The command line: a thin layer that parses arguments, calls the library, and prints one line per outcome.

Every `NewsletterError` becomes one line on stderr (`newsletter: file:line: problem`) and an exit status a script
can act on (see EXIT_STATUSES); argparse usage errors exit 2. No traceback reaches the user for bad input.

The workspace is found here, at the edge, and passed down: the nearest folder at or above the working directory
that holds newsletter.toml. Nothing below this module looks at the working directory.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .audience.suppressions import complaint_warning, edition_reports, store_path
from .base.config import find_root, load_environment, load_publication
from .base.errors import CheckFailed, ConfigError, DataError, NewsletterError, SetupFailed, TemporaryFailure
from .base.workspace import Workspace, open_workspace
from .base.writer import csv_text
from .delivery.export import export_edition
from .edition.pipeline import preview_edition
from .publish import build_edition, check_edition

# Exit statuses: the sysexits values where one fits, so cron or a script can tell "fix it" from "run it later".
EXIT_OK = 0
EXIT_FAILED = 1  # content or checks failed, or a recipient's delivery did
EXIT_USAGE = 2  # argparse's own
EXIT_DATAERR = 65  # a data file (recipients, suppressions) is unusable as it is
EXIT_TEMPFAIL = 75  # stopped, resumable: run the same command again later
EXIT_CONFIG = 78  # configuration or credentials wrong: fix them, then run again
EXIT_INTERRUPTED = 130
EXIT_STATUSES = f"""exit status:
  {EXIT_OK}   success
  {EXIT_FAILED}   content or checks failed (or a recipient's delivery failed); the message says what
  {EXIT_USAGE}   usage: a command or option is wrong
  {EXIT_DATAERR}  bad data: a recipients or suppression file cannot be used as it is
  {EXIT_TEMPFAIL}  temporary: stopped but resumable (server unreachable, Ctrl-C); run the same command later
  {EXIT_CONFIG}  configuration or credentials wrong (newsletter.toml, .env): fix them, then run again"""


def _root() -> Path:
    """The folder of this command's newsletter: newsletter.toml in the working folder or the nearest parent."""
    return find_root(Path.cwd())


def _workspace() -> Workspace:
    """This command's newsletter, its settings read once, here."""
    return open_workspace(_root())


def _edition(text: str) -> str:
    """EDITION as typed: a name under issues/, or a folder, made absolute here so that it means the folder the
    user sees from the working directory even when the workspace root is a parent of it."""
    path = Path(text)
    return str(Path.cwd() / path) if path.is_dir() or len(path.parts) > 1 else text


def cmd_init(args: argparse.Namespace) -> int:
    from .init import FIRST_EDITION, Identity, default_identity, init_newsletter

    folder = args.dir
    given = {"name": args.name, "sender": args.sender, "postal_address": args.postal_address,
             "site_url": args.site_url, "disclaimer": args.disclaimer}  # fmt: skip
    missing = [key for key, value in given.items() if value is None]
    if missing and not args.yes:
        if not sys.stdin.isatty():
            flags = ", ".join(f"--{'from' if key == 'sender' else key.replace('_', '-')}" for key in missing)
            print(f"newsletter init: no terminal to ask on: give {flags}, or --yes for the defaults", file=sys.stderr)
            return EXIT_USAGE
        for key in missing:
            given[key] = _ask(_INIT_QUESTIONS[key], getattr(default_identity(folder, given["name"]), key))
    defaults = default_identity(folder, given["name"])
    answers = {key: getattr(defaults, key) if value is None else value for key, value in given.items()}
    written = init_newsletter(folder, Identity(**answers), theme=args.theme)
    for path in written:
        print(f"wrote {_shown(path)}" + (" (readable by you only)" if path.name == ".env" else ""))
    place = "" if folder.resolve() == Path.cwd().resolve() else f"cd {_shown(folder)} && "
    print(f"next: {place}newsletter build {FIRST_EDITION} && newsletter check {FIRST_EDITION} --quick")
    if not answers["postal_address"] or "@example.com" in answers["sender"]:
        print("then set your own From address and postal address in newsletter.toml: `check` asks for both")
    return EXIT_OK


_INIT_QUESTIONS = {
    "name": "Newsletter name",
    "sender": "From (Name <address@your-domain>)",
    "postal_address": "Postal address (shown in every footer)",
    "site_url": "Site URL where `newsletter serve` will answer",
    "disclaimer": "Disclaimer at the foot of every edition",
}


def _ask(question: str, default: str) -> str:
    answer = input(f"{question} [{default}]: " if default else f"{question}: ").strip()
    return answer or default


def cmd_build(args: argparse.Namespace) -> int:
    result = build_edition(_edition(args.edition), _workspace(), args.out)
    for path in result.files:
        print(f"wrote {_shown(path)}")
    print(
        f"HTML part {result.html_bytes / 1024:.1f} KB (Gmail clips at 102 KB); Message-ID {result.message.message_id}"
    )
    print(f"review it: open {_shown(result.out / 'review.html')} in a browser; `newsletter check` runs every check")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    preview, results = check_edition(_edition(args.edition), _workspace(), tools=not args.quick)
    folder = _shown(preview.rendered.edition.folder)
    print(f"{folder}: built-in checks passed ({len(preview.rendered.edition.articles)} article(s))")
    for result in results:
        print(result.line(), file=sys.stderr if result.status == "failed" else sys.stdout)
    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        print(f"newsletter: {folder}: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_screenshot(args: argparse.Namespace) -> int:
    from .checks.toolchecks import screenshots

    preview = preview_edition(_edition(args.edition), _workspace())
    for path in screenshots(preview.html, args.out):
        print(f"wrote {_shown(path)}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .checks.preview import PreviewServer

    root = _root()
    server = PreviewServer(_edition(args.edition), lambda: open_workspace(root), args.port, tools=not args.quick)
    print(f"reviewing {args.edition} at {server.url} (rebuilds on every change; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    result = export_edition(_edition(args.edition), args.recipients, args.out, _workspace())
    for problem in result.problems:
        print(f"newsletter: {problem}", file=sys.stderr)
    for warning in result.warnings:
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    print(f"wrote {result.written} message(s) and manifest.csv to {_shown(result.out)} (dry run: nothing was sent)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from .edition.importer import import_article

    into = _edition(args.into) if args.into else None
    imported = import_article(args.file, _workspace(), into)
    print(f"imported {args.file} -> {_shown(imported.path)}")
    for warning in imported.warnings:
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    return 0


def cmd_send_test(args: argparse.Namespace) -> int:
    from .delivery.sendtest import send_test

    results = send_test(_edition(args.edition), args.to, _workspace(), verbose=args.verbose)
    for result in results:
        if result.error:
            print(f"newsletter: not sent to {result.address}: {result.error}", file=sys.stderr)
        else:
            print(f"sent to {result.address}: Message-ID {result.message_id}: {result.reply}")
    return 1 if any(r.error for r in results) else 0


def cmd_send(args: argparse.Namespace) -> int:
    from .delivery.send import Send, SendOptions

    options = SendOptions(
        connections=args.connections, rate=args.rate, per_hour=args.per_hour, resend_in_doubt=args.resend_in_doubt,
        max_consecutive_failures=args.max_consecutive_failures, retry_delay=args.retry_delay, limit=args.limit,
        give_up_after=args.give_up_after, verbose=args.verbose,
    )  # fmt: skip
    workspace = _workspace()
    send = Send(_edition(args.edition), args.recipients, workspace, options=options)
    try:
        for problem in send.problems:
            print(f"newsletter: {problem}", file=sys.stderr)
        plan = send.plan()
        for warning in _complaint_warnings(workspace):
            print(f"newsletter: warning: {warning}", file=sys.stderr)
        counted = (f"{plan.to_send} to send, {plan.suppressed} suppressed, {plan.sent} already sent"
                   + (f", {plan.failed} failed" if plan.failed else "")
                   + (f", {plan.in_doubt} in doubt" if plan.in_doubt else ""))  # fmt: skip
        if plan.pending == 0:
            print(f'Edition {plan.edition} "{plan.subject}" is complete: {counted} of {plan.total} recipient(s); '
                  "`newsletter status` shows how it went")  # fmt: skip
            return _send_exit(plan.failed, plan.in_doubt)
        print(
            f'{"Resuming" if plan.resuming else "Sending"} edition {plan.edition} "{plan.subject}": {counted} of '
            f"{plan.total} recipient(s), via {plan.host}, {plan.connections} connection(s), rate {plan.rate}"
        )
        if plan.to_send and not args.yes and not _confirmed():  # with none to send, the run only records skips
            return EXIT_FAILED
        printer = _ProgressPrinter()
        report = send.run(printer)
        printer.finish()
    finally:
        send.close()
    done = report.progress
    print(f"sent {done.sent}, failed {done.failed}, in doubt {done.in_doubt}, skipped {done.skipped} "
          f"of {done.total}; this run {done.sent_this_run} at {done.rate:.0f}/s")  # fmt: skip
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
        print(f"{done.total - done.done} recipient(s) still pending; run the same command again to continue")
        return EXIT_TEMPFAIL
    print(f"edition {plan.edition} is complete")
    return _send_exit(done.failed, done.in_doubt)


def _complaint_warnings(workspace: Workspace) -> list[str]:
    """Editions sent before whose complaint rate is over Gmail's 0.1%, for the next send's plan."""
    from .delivery.journal import JournalReader, sent_editions

    warnings = []
    for path in sent_editions(workspace.root):
        complaints = edition_reports(workspace.suppressions, path.stem).get("complaint", 0)
        if complaints:
            with contextlib.suppress(NewsletterError), JournalReader(path) as journal:
                warning = complaint_warning(complaints, journal.counts()["sent"])
                if warning:
                    warnings.append(f"edition {path.stem}: {warning}")
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


def cmd_status(args: argparse.Namespace) -> int:
    from .delivery.journal import open_existing
    from .edition.load import edition_folder

    root = _root()
    edition = edition_folder(_edition(args.edition), root).name
    with open_existing(root, edition) as journal:
        counts, problems = journal.counts(), journal.problems()
    if args.csv:
        sys.stdout.write(csv_text([["email", "state", "attempts", "reply", "message_id"], *problems]))
        return 0
    print(", ".join(f"{state} {count}" for state, count in counts.items()))
    reports = edition_reports(store_path(root), edition)
    print(f"bounced {reports.get('bounce', 0)}, complained {reports.get('complaint', 0)}, "
          f"unsubscribed {reports.get('unsubscribe', 0)} (from `newsletter bounces`)")  # fmt: skip
    warning = complaint_warning(reports.get("complaint", 0), counts["sent"])
    if warning:
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    for email, state, attempts, reply, _ in problems:
        print(f"{state}: {email} ({attempts} attempt(s)): {reply}")
    return 0


def cmd_bounces(args: argparse.Namespace) -> int:
    from .audience.bounces import KINDS, BounceReader, Summary, read_imap, read_maildir, read_mbox
    from .delivery.journal import SentJournals

    workspace = _workspace()
    imap = workspace.imap if args.imap else None
    reader = BounceReader(workspace, SentJournals(workspace.root, workspace.publication.list_id))
    summary = Summary()
    try:
        if args.maildir:
            read_maildir(args.maildir, reader, summary)
        elif args.mbox:
            read_mbox(args.mbox, reader, summary)
        else:
            read_imap(imap, reader, summary)
    finally:
        reader.close()
    if args.verbose:
        for line in summary.lines:
            print(line)
    for kind in KINDS:
        print(f"{kind}: {summary.counts[kind]}")
    print(f"{summary.suppressed} address(es) suppressed")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web.serve import run_server

    with contextlib.suppress(KeyboardInterrupt):
        run_server(_workspace(), args.host, args.port, args.drafts, args.root_path, args.proxy)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from .web.archive import write_archive

    files = write_archive(_workspace(), args.out, args.drafts)
    print(f"wrote {len(files)} file(s) to {_shown(args.out)}: index.html, one page per edition, feed.xml")
    return 0


def cmd_suppressions(args: argparse.Namespace) -> int:
    import datetime as dt

    from .audience.suppressions import list_suppressions

    entries = list_suppressions(store_path(_root()))
    rows = [[e.address, e.reason, e.source, dt.datetime.fromtimestamp(e.at, dt.UTC).isoformat(timespec="seconds"),
             e.detail] for e in entries]  # fmt: skip
    if args.csv:
        sys.stdout.write(csv_text([["email", "reason", "source", "at", "detail"], *rows]))
        return 0
    for address, reason, source, at, detail in rows:
        print(f"{address}  {reason}  {at}  {source}" + (f"  {detail}" if detail else ""))
    print(f"{len(rows)} suppressed address(es)", file=sys.stderr)
    return 0


def cmd_suppress(args: argparse.Namespace) -> int:
    from .audience.suppressions import SuppressionStore, store_path

    with SuppressionStore(store_path(_root())) as store:
        added = store.add(args.address, args.reason, "command line")
    print(f"{args.address}: {'suppressed' if added else 'was already suppressed'}")
    return 0


def cmd_unsuppress(args: argparse.Namespace) -> int:
    from .audience.suppressions import SuppressionStore, store_path

    with SuppressionStore(store_path(_root())) as store:
        removed = store.remove(args.address)
    print(f"{args.address}: {'no longer suppressed' if removed else 'was not suppressed'}")
    return 0 if removed else 1


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    from .base.addresses import parse_mailbox
    from .base.dkim import generate_key

    root = _root()
    env = load_environment(root)
    publication = load_publication(root, env)  # the settings without the key, which does not exist yet
    domain = env.get("DKIM_DOMAIN", "").strip() or parse_mailbox(publication.sender, "sender").domain
    target = args.out / f"{args.selector}.private"
    if target.exists():
        raise NewsletterError("a key with this selector is already there; choose another selector", target)
    path, record = generate_key(args.type, args.selector, domain, args.out)
    print(f"wrote {_shown(path)} (readable by you only)")
    print(f"publish this DNS record:\n{record}")
    print(f"then set DKIM_PRIVATE_KEY_FILE={path.resolve()} and DKIM_SELECTOR={args.selector} in .env")
    return 0


def cmd_install_checkers(args: argparse.Namespace) -> int:
    from .checks.toolchecks import install_checkers

    folder = install_checkers()
    print(f"installed axe-core, the Nu HTML checker and the caniemail data into {folder}; `newsletter check` uses "
          "them from any folder (it also needs Chromium, Java and SpamAssassin: see its skipped lines)")  # fmt: skip
    return 0


def cmd_smtp_capture(args: argparse.Namespace) -> int:
    from .delivery.capture import run_capture

    run_capture(args.port, args.maildir, args.host)
    return 0


def _shown(path: Path | None) -> str:
    """Paths relative to the working directory where possible: shorter, and what the user typed."""
    if path is None:
        return "newsletter"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
        return value

    return parse


def _port(text: str) -> int:
    """A TCP port number, refused here rather than by a traceback from bind()."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535, got {text}")
    return value


def _host(text: str) -> str:
    """An address to listen on; an empty one would make the server listen on every interface, unasked."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give an address, such as 127.0.0.1 (or 0.0.0.0 for every interface)")
    return text.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsletter",
        description="Build, check, export and send email newsletters.",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens, SMTP dialogue included "
                        "(AUTH lines and passwords are redacted)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common], epilog=EXIT_STATUSES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", cmd_init, "start a newsletter: newsletter.toml, .env, .gitignore and a first edition")
    init.add_argument("dir", nargs="?", type=Path, default=Path("."), help="folder to start in (default: here)")
    init.add_argument("--name", help="the newsletter's name")
    init.add_argument("--from", dest="sender", metavar="FROM", help="its sender, 'Name <address@your-domain>'")
    init.add_argument("--postal-address", help="your postal address, shown in every footer")
    init.add_argument("--site-url", help="where `newsletter serve` answers (https://...)")
    init.add_argument("--disclaimer", help="the disclaimer every edition carries")
    init.add_argument("--theme", action="store_true", help="also copy the templates into templates/ for editing")
    init.add_argument("--yes", action="store_true", help="use the defaults for anything not given; ask nothing")

    build = command("build", cmd_build, "build an edition into email.html, email.txt and email.eml")
    build.add_argument("edition", help="edition name under issues/, or its folder")
    build.add_argument("--out", type=Path, help="output folder (default: build/EDITION/)")

    check = command("check", cmd_check, "run every check of the build without writing anything")
    check.add_argument("edition", help="edition name under issues/, or its folder")
    check.add_argument("--quick", action="store_true", help="only the built-in checks, not the real tools")

    preview = command("preview", cmd_preview, "serve a review page on 127.0.0.1 that rebuilds on every change")
    preview.add_argument("edition", help="edition name under issues/, or its folder")
    preview.add_argument("--port", type=_port, default=8025, help="port on 127.0.0.1 (default 8025)")
    preview.add_argument("--quick", action="store_true", help="skip the real-tool checks on each rebuild")

    shots = command("screenshot", cmd_screenshot, "write desktop.png, mobile.png and dark.png via headless Chromium")
    shots.add_argument("edition", help="edition name under issues/, or its folder")
    shots.add_argument("--out", type=Path, required=True, help="output folder")

    export = command("export", cmd_export, "dry run: one .eml per recipient plus manifest.csv; never connects")
    export.add_argument("edition", help="edition name under issues/, or its folder")
    export.add_argument("--recipients", type=Path, required=True, help="CSV with an email column (name optional)")
    export.add_argument("--out", type=Path, required=True, help="output folder")

    importer = command("import", cmd_import, "turn a blog post (.txt, .html, .md) into an article of an edition")
    importer.add_argument("file", type=Path, help="the saved blog post")
    importer.add_argument("--into", help="edition name or folder (default: a new edition named after the title)")

    send_test = command("send-test", cmd_send_test, "send the built edition to yourself via SMTP, subject [TEST]")
    send_test.add_argument("edition", help="edition name under issues/, or its folder")
    send_test.add_argument("--to", action="append", required=True, metavar="ADDR", help="repeat for up to 10")

    send = command("send", cmd_send, "send the edition to every recipient, exactly once; resumable")
    send.add_argument("edition", help="edition name under issues/, or its folder")
    send.add_argument("--recipients", type=Path, required=True, help="CSV with an email column (name optional)")
    send.add_argument("--yes", action="store_true", help="send without asking (needed when not on a terminal)")
    send.add_argument("--connections", type=_positive(int), default=1, help="parallel SMTP connections (default 1)")
    send.add_argument("--rate", type=_positive(float), help="at most N messages per second")
    send.add_argument("--per-hour", type=_positive(int), help="at most N messages in any hour")
    send.add_argument("--limit", type=_positive(int), help="send at most N messages in this run, then stop")
    send.add_argument("--resend-in-doubt", action="store_true",
                      help="send again to recipients whose earlier send may or may not have arrived")  # fmt: skip
    send.add_argument("--max-consecutive-failures", type=_positive(int), default=20, metavar="N",
                      help="stop after N failed sends in a row (default 20); running again resumes")  # fmt: skip
    send.add_argument("--retry-delay", type=_positive(float), default=1.0, metavar="SECONDS",
                      help="first wait before retrying a temporary failure; doubles each time (default 1)")  # fmt: skip
    send.add_argument("--give-up-after", type=_positive(float), default=60.0, metavar="SECONDS",
                      help="stop when every attempt has failed for this long, e.g. the server cannot be reached "
                      "(default 60)")  # fmt: skip

    status = command("status", cmd_status, "show how the send of an edition went: counts, failed and in-doubt")
    status.add_argument("edition", help="edition name under issues/, or its folder")
    status.add_argument("--csv", action="store_true", help="failed and in-doubt recipients as CSV")

    serve = command("serve", cmd_serve, "serve one-click unsubscribe, the archive, web versions and feed.xml")
    serve.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port (default 8080)")
    serve.add_argument("--drafts", action="store_true", help="list every edition, not only those sent (review)")
    serve.add_argument("--root-path", default="", help="the path prefix a reverse proxy serves it under")
    serve.add_argument("--proxy", action="store_true", help="trust X-Forwarded-* headers (behind a proxy)")

    archive = command("archive", cmd_archive, "write the archive and feed as static files")
    archive.add_argument("--out", type=Path, required=True, help="output folder")
    archive.add_argument("--drafts", action="store_true", help="every edition, not only those sent")

    bounces = command("bounces", cmd_bounces, "read bounces, complaints and mailto unsubscribes into suppressions")
    source = bounces.add_mutually_exclusive_group(required=True)
    source.add_argument("--maildir", type=Path, help="a Maildir the bounce address delivers to")
    source.add_argument("--mbox", type=Path, help="an mbox file the bounce address delivers to")
    source.add_argument("--imap", action="store_true", help="the IMAP folder of IMAP_HOST, IMAP_USERNAME, ...")

    listing = command("suppressions", cmd_suppressions, "list suppressed addresses: reason, source, time")
    listing.add_argument("--csv", action="store_true", help="as CSV")
    suppress = command("suppress", cmd_suppress, "never mail an address again")
    suppress.add_argument("address")
    suppress.add_argument("--reason", default="manual", choices=["manual", "unsubscribe", "bounce", "complaint"])
    unsuppress = command("unsuppress", cmd_unsuppress, "lift an address's suppression")
    unsuppress.add_argument("address")

    keygen = command("dkim-keygen", cmd_dkim_keygen, "make a DKIM key (0600) and print the DNS record to publish")
    keygen.add_argument("--selector", required=True, help="the DKIM selector, e.g. news2026")
    keygen.add_argument("--type", choices=["rsa", "ed25519"], default="rsa",
                        help="rsa (2048 bits, understood everywhere) or ed25519 (RFC 8463, faster)")  # fmt: skip
    keygen.add_argument("--out", type=Path, required=True, help="folder for SELECTOR.private")

    command(
        "install-checkers",
        cmd_install_checkers,
        "install the pinned npm checkers `check` uses (axe-core, Nu checker, caniemail) into a per-user cache",
    )
    capture = command("smtp-capture", cmd_smtp_capture, "run a local SMTP server that stores messages as .eml")
    capture.add_argument("--port", type=_port, default=1025, help="port to listen on (default 1025)")
    capture.add_argument("--host", type=_host, default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    capture.add_argument("--maildir", type=Path, default=Path("captured"), help="folder for .eml files")
    return parser


def exit_status(error: NewsletterError) -> int:
    """What an error means for whoever runs the command: fix the settings, fix the data, or try again later."""
    if isinstance(error, ConfigError | SetupFailed):
        return EXIT_CONFIG
    if isinstance(error, DataError):
        return EXIT_DATAERR
    if isinstance(error, TemporaryFailure):
        return EXIT_TEMPFAIL
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="newsletter: %(message)s")
    try:
        return args.handler(args)
    except CheckFailed as failed:
        for problem in failed.problems:
            print(f"newsletter: {_shown(failed.path)}: {problem}", file=sys.stderr)
        return EXIT_FAILED
    except NewsletterError as error:
        print(f"newsletter: {error.describe(_shown)}", file=sys.stderr)
        return exit_status(error)
    except OSError as error:  # the file system said no (an --out that is a file, a full disk, permissions)
        where = f"{_shown(Path(error.filename))}: " if error.filename else ""
        print(f"newsletter: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("newsletter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
