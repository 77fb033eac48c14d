"""`export`: the dry run. One .eml per recipient and a manifest, written through the same transport interface and
the same composition as a send, into files; nothing here can open a socket."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..base.files import read_text
from ..base.model import Recipient
from ..base.workspace import Workspace
from ..base.writer import atomic_write, csv_text, make_folder, safe_join
from ..edition.compose import MessageFactory
from ..edition.pipeline import prepare_for_recipients
from .files import EXPORT_FILE, FileTransport
from .transport import run_deliveries

MANIFEST = "manifest.csv"


@dataclass
class ExportResult:
    out: Path
    written: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_edition(edition: str | Path, recipients_csv: Path, out: Path, workspace: Workspace) -> ExportResult:
    """The dry run: one .eml per valid recipient plus manifest.csv, delivered through the same transport
    interface and the same composition as a send, into files. Imports nothing that can open a socket."""
    factory, recipients = prepare_for_recipients(edition, recipients_csv, workspace)
    make_folder(out)
    earlier = _earlier_export(out)
    rows = run_deliveries(_deliver_to_files(factory, recipients.recipients, FileTransport(out)))
    atomic_write(safe_join(out, MANIFEST), csv_text([["recipient", "file", "Message-ID"], *rows]), private=True)
    for name in earlier - {file for _, file, _ in rows}:  # what the earlier export wrote, and only that
        safe_join(out, name).unlink(missing_ok=True)
    warnings = []
    if not factory.rendered.publication.unsubscribe_secret:
        warnings.append(
            "NEWSLETTER_UNSUBSCRIBE_SECRET is not set: these messages' unsubscribe links use the public development "
            "key, so anyone could forge them; fine for a dry run, never for mail you send"
        )
    return ExportResult(out, len(rows), recipients.problems, warnings)


def _earlier_export(out: Path) -> set[str]:
    """The message files an earlier export into `out` wrote, as its manifest lists them (names of the export's
    own pattern only: a doctored manifest cannot make us delete anything else)."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return set()
    rows = csv.reader(io.StringIO(read_text(manifest), newline=""))
    next(rows, None)
    return {row[1] for row in rows if len(row) > 1 and EXPORT_FILE.fullmatch(row[1])}


async def _deliver_to_files(factory: MessageFactory, recipients: list[Recipient], transport: FileTransport):
    rows = []
    async with transport:
        for recipient in recipients:
            message = factory.compose(recipient)
            rows.append([recipient.email, await transport.send(message), message.message_id])
    return rows
