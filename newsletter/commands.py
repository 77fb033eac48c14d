"""What each command does: a few lines each over the library, printing one line per outcome.

Each command imports what it needs when it runs: rendering pulls in premailer, cssutils and requests (0.4 s),
which `status` or `suppress` should not wait for. The workspace is found here, at the edge, and passed down: the
nearest folder at or above the working directory that holds newsletter.toml. Nothing below this layer looks at the
working directory. `send`, the one command with a conversation (the plan, a confirmation, progress), is in
`sending`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from .audience.suppressions import edition_reports, edition_warnings, store_path
from .base.config import find_root, load_environment, load_publication
from .base.errors import NewsletterError
from .base.workspace import Workspace, open_workspace
from .base.writer import csv_text

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


def workspace_root() -> Path:
    """The folder of this command's newsletter: newsletter.toml in the working folder or the nearest parent."""
    return find_root(Path.cwd())


def current_workspace() -> Workspace:
    """This command's newsletter, its settings read once, here."""
    return open_workspace(workspace_root())


def edition_argument(text: str) -> str:
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
        print(f"wrote {shown(path)}" + (" (readable by you only)" if path.name == ".env" else ""))
    place = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shown(folder)} && "
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
    from .publish import build_edition

    result = build_edition(edition_argument(args.edition), current_workspace(), args.out)
    for path in result.files:
        print(f"wrote {shown(path)}")
    print(
        f"HTML part {result.html_bytes / 1024:.1f} KB (Gmail clips at 102 KB); Message-ID {result.message.message_id}"
    )
    print(f"review it: open {shown(result.out / 'review.html')} in a browser; `newsletter check` runs every check")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .publish import check_edition

    preview, results = check_edition(edition_argument(args.edition), current_workspace(), tools=not args.quick)
    folder = shown(preview.rendered.edition.folder)
    print(f"{folder}: built-in checks passed ({len(preview.rendered.edition.articles)} article(s))")
    for result in results:
        print(result.line(), file=sys.stderr if result.status == "failed" else sys.stdout)
    failed = [r.name for r in results if r.status == "failed"]
    if failed:
        print(f"newsletter: {folder}: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_screenshot(args: argparse.Namespace) -> int:
    from .checks.chromium import screenshots
    from .edition.pipeline import preview_edition

    preview = preview_edition(edition_argument(args.edition), current_workspace())
    for path in screenshots(preview.html, args.out):
        print(f"wrote {shown(path)}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from .checks.preview import PreviewServer

    root = workspace_root()
    server = PreviewServer(
        edition_argument(args.edition), lambda: open_workspace(root), args.port, tools=not args.quick
    )
    print(f"reviewing {args.edition} at {server.url} (rebuilds on every change; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def print_problem(problem: str) -> None:
    """A row of a list left out (bad, a duplicate, suppressed), on stderr as it is met."""
    print(f"newsletter: {problem}", file=sys.stderr, flush=True)


def cmd_export(args: argparse.Namespace) -> int:
    from .delivery.export import export_edition
    from .delivery.snapshot import exported_list

    workspace, edition = current_workspace(), edition_argument(args.edition)
    with contextlib.ExitStack() as stack:
        recipients = args.recipients or stack.enter_context(exported_list(workspace, edition_name(edition, workspace)))
        result = export_edition(edition, recipients, args.out, workspace, on_problem=print_problem)
    for warning in result.warnings:
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    print(f"wrote {result.written} message(s) and manifest.csv to {shown(result.out)} (dry run: nothing was sent)")
    return 0


def edition_name(edition: str, workspace: Workspace) -> str:
    """The name of the edition an EDITION argument names (a name, or a folder under issues/)."""
    from .edition.load import edition_folder

    return edition_folder(edition, workspace.root).name


def cmd_import(args: argparse.Namespace) -> int:
    from .edition.importer import import_article

    into = edition_argument(args.into) if args.into else None
    imported = import_article(args.file, current_workspace(), into)
    print(f"imported {args.file} -> {shown(imported.path)}")
    for warning in imported.warnings:
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    return 0


def cmd_send_test(args: argparse.Namespace) -> int:
    from .delivery.sendtest import send_test

    results = send_test(edition_argument(args.edition), args.to, current_workspace(), verbose=args.verbose)
    for result in results:
        if result.error:
            print(f"newsletter: not sent to {result.address}: {result.error}", file=sys.stderr)
        else:
            print(f"sent to {result.address}: Message-ID {result.message_id}: {result.reply}")
    return 1 if any(r.error for r in results) else 0


def cmd_status(args: argparse.Namespace) -> int:
    from .delivery.journal import open_existing
    from .edition.load import edition_folder

    root = workspace_root()
    edition = edition_folder(edition_argument(args.edition), root).name
    with open_existing(root, edition) as journal:
        counts, problems = journal.counts(), journal.problems()
    if args.csv:
        sys.stdout.write(csv_text([["email", "state", "attempts", "reply", "message_id"], *problems]))
        return 0
    print(", ".join(f"{state} {count}" for state, count in counts.items()))
    reports = edition_reports(store_path(root), edition)
    print(f"bounced {reports.get('bounce', 0)}, complained {reports.get('complaint', 0)}, "
          f"unsubscribed {reports.get('unsubscribe', 0)}, refused {reports.get('refused', 0)} (from `newsletter "
          f"bounces`; {reports.get('unverified', 0)} unverified report(s) changed nothing)")  # fmt: skip
    for warning in edition_warnings(store_path(root), edition, counts["sent"]):
        print(f"newsletter: warning: {warning}", file=sys.stderr)
    for email, state, attempts, reply, _ in problems:
        print(f"{state}: {email} ({attempts} attempt(s)): {reply}")
    return 0


def cmd_bounces(args: argparse.Namespace) -> int:
    from .audience.bounces import KINDS, BounceReader, Summary
    from .audience.mailboxes import read_imap, read_maildir, read_mbox
    from .delivery.journal import SentJournals

    workspace = current_workspace()
    imap = workspace.imap if args.imap else None
    sent = SentJournals(workspace.root, workspace.publication.list_id)
    reader = BounceReader(workspace, sent, trust_unverified=args.trust_unverified)
    summary = Summary(each=print if args.verbose else None)
    try:
        if args.maildir:
            read_maildir(args.maildir, reader, summary)
        elif args.mbox:
            read_mbox(args.mbox, reader, summary)
        else:
            read_imap(imap, reader, summary)
    finally:
        reader.close()
        sent.close()
    for kind in KINDS:
        print(f"{kind}: {summary.counts[kind]}")
    print(f"{summary.suppressed} address(es) suppressed")
    if summary.unverified:
        print(f"{summary.unverified} report(s) unverified: no VERP tag or Message-ID of ours shows they are about "
              "mail we sent, so they changed nothing (`-v` lists them; `status` counts them)")  # fmt: skip
    for line in summary.unreadable:
        print(f"newsletter: set aside, could not be read: {line}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web.serve import run_server

    with contextlib.suppress(KeyboardInterrupt):
        run_server(current_workspace(), args.host, args.port, args.drafts, args.root_path, args.proxy)
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    from .web.archive import write_archive

    files = write_archive(current_workspace(), args.out, args.drafts)
    print(f"wrote {len(files)} file(s) to {shown(args.out)}: index.html, one page per edition, feed.xml")
    return 0


def cmd_suppressions(args: argparse.Namespace) -> int:
    import datetime as dt

    from .audience.suppressions import list_suppressions

    entries = list_suppressions(store_path(workspace_root()))
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

    with SuppressionStore(store_path(workspace_root())) as store:
        added = store.add(args.address, args.reason, "command line")
    print(f"{args.address}: {'suppressed' if added else 'was already suppressed'}")
    return 0


def cmd_unsuppress(args: argparse.Namespace) -> int:
    from .audience.suppressions import SuppressionStore, store_path

    with SuppressionStore(store_path(workspace_root())) as store:
        removed = store.remove(args.address)
    print(f"{args.address}: {'no longer suppressed' if removed else 'was not suppressed'}")
    return 0 if removed else 1


def cmd_dkim_keygen(args: argparse.Namespace) -> int:
    from .base.addresses import parse_mailbox
    from .base.dkim import generate_key

    root = workspace_root()
    env = load_environment(root)
    publication = load_publication(root, env)  # the settings without the key, which does not exist yet
    domain = env.get("DKIM_DOMAIN", "").strip() or parse_mailbox(publication.sender, "sender").domain
    target = args.out / f"{args.selector}.private"
    if target.exists():
        raise NewsletterError("a key with this selector is already there; choose another selector", target)
    path, record = generate_key(args.type, args.selector, domain, args.out)
    print(f"wrote {shown(path)} (readable by you only)")
    print(f"publish this DNS record:\n{record}")
    print(f"then set DKIM_PRIVATE_KEY_FILE={path.resolve()} and DKIM_SELECTOR={args.selector} in .env")
    return 0


def cmd_install_checkers(args: argparse.Namespace) -> int:
    from .checks.tools import install_checkers

    folder = install_checkers()
    print(f"installed axe-core, the Nu HTML checker and the caniemail data into {folder}; `newsletter check` uses "
          "them from any folder (it also needs Chromium, Java and SpamAssassin: see its skipped lines)")  # fmt: skip
    return 0


def cmd_smtp_capture(args: argparse.Namespace) -> int:
    from .delivery.capture import run_capture

    run_capture(args.port, args.maildir, args.host)
    return 0


def shown(path: Path | None) -> str:
    """Paths relative to the working directory where possible: shorter, and what the user typed."""
    if path is None:
        return "newsletter"
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
