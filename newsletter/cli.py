"""The command line: a thin layer that parses arguments, calls the library, and prints one line per outcome.

Every `NewsletterError` becomes one line on stderr (`newsletter: file:line: problem`) and exit status 1; argparse
usage errors exit 2. No traceback reaches the user for bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import load_publication
from .errors import CheckFailed, NewsletterError
from .importer import import_article
from .pipeline import build_edition, export_edition, render_checked

log = logging.getLogger("newsletter")


def cmd_build(args: argparse.Namespace) -> int:
    result = build_edition(args.edition, args.out)
    for path in result.files:
        print(f"wrote {_shown(path)}")
    print(
        f"HTML part {result.html_bytes / 1024:.1f} KB (Gmail clips at 102 KB); Message-ID {result.message.message_id}"
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    rendered = render_checked(args.edition)
    print(f"{_shown(rendered.edition.folder)}: all checks passed ({len(rendered.edition.articles)} article(s))")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    result = export_edition(args.edition, args.recipients, args.out)
    for problem in result.problems:
        print(f"newsletter: {problem}", file=sys.stderr)
    print(f"wrote {result.written} message(s) and manifest.csv to {_shown(result.out)} (dry run: nothing was sent)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    article = import_article(args.file, load_publication(), args.into)
    print(f"imported {args.file} -> {_shown(article)}")
    return 0


def cmd_send_test(args: argparse.Namespace) -> int:
    from .sending import send_test

    results = send_test(args.edition, args.to, verbose=args.verbose)
    for result in results:
        if result.error:
            print(f"newsletter: not sent to {result.address}: {result.error}", file=sys.stderr)
        else:
            print(f"sent to {result.address}: Message-ID {result.message_id}: {result.reply}")
    return 1 if any(r.error for r in results) else 0


def cmd_smtp_capture(args: argparse.Namespace) -> int:
    from .capture import run_capture

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsletter", description="Build, check, export and send email newsletters.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens, SMTP dialogue included "
                        "(AUTH lines and passwords are redacted)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    build = command("build", cmd_build, "build an edition into email.html, email.txt and email.eml")
    build.add_argument("edition", help="edition name under issues/, or its folder")
    build.add_argument("--out", type=Path, help="output folder (default: build/EDITION/)")

    check = command("check", cmd_check, "run every check of the build without writing anything")
    check.add_argument("edition", help="edition name under issues/, or its folder")

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

    capture = command("smtp-capture", cmd_smtp_capture, "run a local SMTP server that stores messages as .eml")
    capture.add_argument("--port", type=int, default=1025, help="port to listen on (default 1025)")
    capture.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    capture.add_argument("--maildir", type=Path, default=Path("captured"), help="folder for .eml files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="newsletter: %(message)s")
    try:
        return args.handler(args)
    except CheckFailed as failed:
        for problem in failed.problems:
            print(f"newsletter: {_shown(failed.path)}: {problem}", file=sys.stderr)
        return 1
    except NewsletterError as error:
        print(f"newsletter: {error.describe(_shown)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("newsletter: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
