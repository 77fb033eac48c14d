"""The subscriber commands: `subscribers` (the list, and `subscribers import`), `subscribe` and `forget`."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import sys
import time

from .audience.subscribers import Consent, SignUp, Subscriber, SubscriberStore, import_subscribers, store_path
from .audience.suppressions import SuppressionStore
from .audience.tokens import required_keys
from .base.addresses import mailbox_key
from .base.database import IN_BATCH
from .base.writer import spreadsheet_row
from .commands import EXIT_OK, current_workspace, print_problem, shown

COLUMNS = ["email", "name", "status", "suppressed", "created", "confirmed", "source", "page", "consent",
           "signup_ip", "signup_agent", "confirm_ip", "confirm_agent", "fields"]  # fmt: skip


def cmd_subscribers(args: argparse.Namespace) -> int:
    if args.action == "import":
        return _import(args)
    workspace = current_workspace()
    if not store_path(workspace.root).is_file():
        print("no subscribers yet (`newsletter subscribers import FILE.csv --source TEXT` brings a list in)",
              file=sys.stderr)  # fmt: skip
        return EXIT_OK
    writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
    if writer:
        writer.writerow(COLUMNS)
    shown_count = 0
    with SubscriberStore(store_path(workspace.root)) as subscribers, SuppressionStore(workspace.suppressions) as stop:
        batch: list[Subscriber] = []
        for subscriber in itertools.chain(subscribers.listing(args.status or ""), [None]):
            if subscriber is not None:
                batch.append(subscriber)
            if len(batch) == IN_BATCH or (subscriber is None and batch):
                shown_count += _print_batch(batch, stop.reasons_for([mailbox_key(s.address) for s in batch]), writer)
                batch = []
        counts = subscribers.counts()
    print(f"{shown_count} shown; " + ", ".join(f"{status} {n}" for status, n in counts.items()), file=sys.stderr)
    return EXIT_OK


def _print_batch(batch: list[Subscriber], suppressed: dict[str, str], writer) -> int:
    """One line (or CSV row, spreadsheet-safe) per subscriber, with why they are suppressed, if they are."""
    for s in batch:
        stopped = suppressed.get(mailbox_key(s.address), "")
        if writer is None:
            print(f"{s.address}  {s.status}{f' (suppressed: {stopped})' if stopped else ''}  {_time(s.created)}  "
                  f"{s.source}" + (f"  {s.consent}" if s.consent else ""))  # fmt: skip
            continue
        fields = ";".join(f"{name}={value}" for name, value in s.fields.items())
        writer.writerow(spreadsheet_row([s.address, s.name, s.status, stopped, _time(s.created), _time(s.confirmed),
                                         s.source, s.page, s.consent, s.signup_ip, s.signup_agent, s.confirm_ip,
                                         s.confirm_agent, fields]))  # fmt: skip
    return len(batch)


def _time(at: float | None) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds") if at else ""


def _import(args: argparse.Namespace) -> int:
    workspace = current_workspace()
    text = args.source.strip()
    consent = Consent("import", page=shown(args.file), text=text)
    result = import_subscribers(store_path(workspace.root), args.file, consent, args.confirmed, print_problem)
    status = "confirmed (consent obtained elsewhere: " + text + ")" if args.confirmed else "pending confirmation"
    print(f"imported {result.added} subscriber(s) from {shown(args.file)}, {status}; {result.existing} already "
          f"subscribed, left as they were; {result.left_out} row(s) left out")  # fmt: skip
    return EXIT_OK


def cmd_subscribe(args: argparse.Namespace) -> int:
    """A subscriber by hand: confirmed at once with --confirmed; else pending, and the confirmation mail goes
    now through the configured transport (or waits in the outbox for `serve` when none is set up)."""
    workspace = current_workspace()
    if not args.confirmed:  # the confirmation link needs the key: say so before anything is written
        required_keys(workspace.publication.unsubscribe_secret, "subscribe")
    consent = Consent("cli", text="added with `newsletter subscribe`")
    with SuppressionStore(workspace.suppressions) as stop:
        stopped = stop.suppressed(args.address)
    with SubscriberStore(store_path(workspace.root)) as subscribers:
        before = subscribers.get(args.address)
        if args.confirmed:
            subscriber = subscribers.subscribe(args.address, args.name or "", consent, confirmed=True)
        else:
            subscribers.sign_up([SignUp(args.address, args.name or "", consent, may_mail=stopped is None,
                                        at=time.time())])  # fmt: skip
            subscriber = subscribers.get(args.address)
            mailed = _mail_now(workspace, subscribers) if subscriber.status == "pending" else ""
    said = "already " if before is not None and before.status == subscriber.status else ""
    print(f"{subscriber.address}: {said}{subscriber.status}" + ("" if args.confirmed else mailed))
    if stopped is not None:
        print(f"newsletter: warning: {subscriber.address} is suppressed ({stopped.reason}): no mail goes to it "
              "until `newsletter unsuppress` lifts that", file=sys.stderr)  # fmt: skip
    return EXIT_OK


def _mail_now(workspace, subscribers: SubscriberStore) -> str:
    from .audience.outbox import Outbox
    from .delivery.transport import run_deliveries
    from .web.mailer import Mailer

    mailer = Mailer(workspace, Outbox(subscribers), command="subscribe")
    if mailer.connect is None:
        return " (its confirmation mail waits until `newsletter serve` runs with a transport set up)"
    handed = run_deliveries(mailer.send_due())
    return (
        "; confirmation mail sent"
        if handed
        else "; no confirmation mail now (one went out in the last 10 minutes, "
        "or the relay did not take it: `newsletter serve` retries)"
    )


def cmd_forget(args: argparse.Namespace) -> int:
    from .erasure import forget

    erased = forget(current_workspace(), args.address)
    print(f"{erased.address}: " + ("subscriber record and consent record deleted; " if erased.subscriber else "")
          + f"replaced by a keyed hash in the suppression store and {len(erased.journals)} send journal(s)"
          + (f", removed from {len(erased.snapshots)} snapshot(s)" if erased.snapshots else "")
          + (f" and {len(erased.exports)} export(s)" if erased.exports else "")
          + "; it will never be mailed again" + ("" if erased.still_named else ", and no file of the newsletter "
                                                 "names it"))  # fmt: skip
    for path in erased.your_files:
        print(f"newsletter: {shown(path)} (a list you keep) still names it: remove that row by hand", file=sys.stderr)
    for path in erased.still_named:
        print(f"newsletter: warning: {shown(path)} still names it", file=sys.stderr)
    return 1 if erased.still_named else EXIT_OK


def cmd_form_snippet(args: argparse.Namespace) -> int:
    from .web.signup import form_snippet

    sys.stdout.write(form_snippet(current_workspace().publication))
    return EXIT_OK
