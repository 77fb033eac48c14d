"""The command line: the arguments of every command, and one line and an exit status for every outcome.

Every `NewsletterError` becomes one line on stderr (`newsletter: file:line: problem`) and an exit status a script
can act on (see EXIT_STATUSES in `commands`); argparse usage errors exit 2. No traceback reaches the user for bad
input. What each command does is in `commands` (and `sending`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .base.errors import CheckFailed, ConfigError, DataError, NewsletterError, SetupFailed, TemporaryFailure
from .commands import (
    EXIT_CONFIG,
    EXIT_DATAERR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STATUSES,
    EXIT_TEMPFAIL,
    cmd_archive,
    cmd_bounces,
    cmd_build,
    cmd_check,
    cmd_dkim_keygen,
    cmd_export,
    cmd_import,
    cmd_init,
    cmd_install_checkers,
    cmd_preview,
    cmd_screenshot,
    cmd_send_test,
    cmd_serve,
    cmd_smtp_capture,
    cmd_status,
    cmd_suppress,
    cmd_suppressions,
    cmd_unsuppress,
    shown,
)  # fmt: skip
from .sending import cmd_send
from .subscribing import cmd_forget, cmd_form_snippet, cmd_subscribe, cmd_subscribers


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


RECIPIENTS_HELP = "CSV with an email column (name optional); default: every confirmed subscriber"


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
    export.add_argument("--recipients", type=Path, help=RECIPIENTS_HELP)
    export.add_argument("--out", type=Path, required=True, help="output folder")

    importer = command("import", cmd_import, "turn a blog post (.txt, .html, .md) into an article of an edition")
    importer.add_argument("file", type=Path, help="the saved blog post")
    importer.add_argument("--into", help="edition name or folder (default: a new edition named after the title)")

    send_test = command("send-test", cmd_send_test, "send the built edition to yourself via SMTP, subject [TEST]")
    send_test.add_argument("edition", help="edition name under issues/, or its folder")
    send_test.add_argument("--to", action="append", required=True, metavar="ADDR", help="repeat for up to 10")

    send = command("send", cmd_send, "send the edition to every recipient, exactly once; resumable")
    send.add_argument("edition", help="edition name under issues/, or its folder")
    send.add_argument("--recipients", type=Path, help=RECIPIENTS_HELP)
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
    bounces.add_argument("--trust-unverified", action="store_true",
                         help="UNSAFE: also act on reports that show no evidence of being about mail we "
                         "sent (no VERP tag, no Message-ID of ours): anyone can send those, naming anyone")  # fmt: skip

    listing = command("suppressions", cmd_suppressions, "list suppressed addresses: reason, source, time")
    listing.add_argument("--csv", action="store_true", help="as CSV")
    suppress = command("suppress", cmd_suppress, "never mail an address again")
    suppress.add_argument("address")
    suppress.add_argument("--reason", default="manual", choices=["manual", "unsubscribe", "bounce", "complaint"])
    unsuppress = command("unsuppress", cmd_unsuppress, "lift an address's suppression")
    unsuppress.add_argument("address")

    subscribers = command("subscribers", cmd_subscribers, "list the subscribers: status, times, source, consent")
    subscribers.add_argument("--status", choices=["pending", "confirmed", "unsubscribed"], help="only these")
    subscribers.add_argument("--csv", action="store_true", help="as CSV (spreadsheet-safe)")
    actions = subscribers.add_subparsers(dest="action", metavar="ACTION")
    importing = actions.add_parser("import", help="bring an existing list in", description="bring an existing list "
                                   "in: bad rows and duplicates are reported by line, good rows kept")  # fmt: skip
    importing.add_argument("file", type=Path, help="CSV with an email column (name and others optional)")
    importing.add_argument("--source", required=True, help="where the list and its consent come from, kept with "
                           "each subscriber (e.g. 'Mailchimp export 2026-11, signed up on our website')")  # fmt: skip
    importing.add_argument("--confirmed", action="store_true", help="consent was obtained elsewhere (double opt-in "
                           "there): the subscribers are confirmed now, with --source as the record")  # fmt: skip
    subscribe = command("subscribe", cmd_subscribe, "add a subscriber (pending until they confirm)")
    subscribe.add_argument("address")
    subscribe.add_argument("--name", help="their name")
    subscribe.add_argument("--confirmed", action="store_true", help="they already confirmed (consent given to you)")
    forget = command("forget", cmd_forget, "erasure on request: delete a subscriber and every trace of the address")
    forget.add_argument("address")
    command("form-snippet", cmd_form_snippet, "print the sign-up form's HTML, to paste into your own website")

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
            print(f"newsletter: {shown(failed.path)}: {problem}", file=sys.stderr)
        return EXIT_FAILED
    except NewsletterError as error:
        print(f"newsletter: {error.describe(shown)}", file=sys.stderr)
        return exit_status(error)
    except OSError as error:  # the file system said no (an --out that is a file, a full disk, permissions)
        where = f"{shown(Path(error.filename))}: " if error.filename else ""
        print(f"newsletter: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("newsletter: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
