"""`export`: the dry run. One .eml per recipient and a manifest, written through the same transport interface and
the same composition as a send, into files; nothing here can open a socket.

The list is read as a stream and the manifest written a row at a time, so an export of a million recipients
holds one message in memory, not a million; duplicates are found through a key set on disk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..audience.exclusions import Exclusions
from ..audience.recipients import RecipientFile, SeenKeys, checked_rows
from ..base.model import Recipient
from ..base.workspace import Workspace
from ..base.writer import atomic_file, atomic_write, make_folder, private_folder, safe_join, spreadsheet_row
from ..edition.compose import MessageFactory
from ..edition.pipeline import message_factory
from .files import EXPORT_FILE, FileTransport
from .transport import run_deliveries

MANIFEST = "manifest.csv"


@dataclass
class ExportResult:
    out: Path
    written: int
    left_out: int = 0  # bad rows, duplicates and suppressed addresses, each reported to `on_problem`
    warnings: list[str] = field(default_factory=list)


def export_edition(edition: str | Path, recipients_csv: Path, out: Path, workspace: Workspace,
                   on_problem: Callable[[str], None] | None = None) -> ExportResult:  # fmt: skip
    """The dry run: one .eml per valid recipient plus manifest.csv, delivered through the same transport
    interface and the same composition as a send, into files. Imports nothing that can open a socket.
    `on_problem` is told each row left out, by file and line, as it is met."""
    source = RecipientFile(recipients_csv)
    source.survey()  # a file that is not UTF-8 is refused before anything is written
    factory = message_factory(edition, workspace, source.columns)
    make_folder(out)
    result = ExportResult(out, 0)
    exclusions, mailboxes, names = Exclusions(workspace), SeenKeys(), SeenKeys()

    def recipients() -> Iterator[Recipient]:
        for checked in checked_rows(source, mailboxes, exclusions.among):
            if checked.problem:
                result.left_out += 1
                if on_problem:
                    on_problem(checked.problem)
            else:
                yield checked.row.recipient

    try:
        with atomic_file(safe_join(out, MANIFEST), private=True) as manifest:
            lines = csv.writer(io.TextIOWrapper(manifest, "utf-8", newline="", write_through=True), lineterminator="\n")
            lines.writerow(["recipient", "file", "Message-ID"])
            result.written = run_deliveries(_deliver_to_files(factory, recipients(), FileTransport(out), lines, names))
            _remove_earlier_export(out, names)
    finally:
        for closing in (exclusions, mailboxes, names):
            closing.close()
    _remember(workspace, out)
    if not factory.rendered.publication.unsubscribe_secret:
        result.warnings.append(
            "NEWSLETTER_UNSUBSCRIBE_SECRET is not set: these messages' unsubscribe links use the public development "
            "key, so anyone could forge them; fine for a dry run, never for mail you send"
        )
    return result


EXPORTS = "exports.txt"  # in .newsletter/: every folder an export wrote to, so an erasure can find them


def _remember(workspace: Workspace, out: Path) -> None:
    registry = workspace.private / EXPORTS
    folders = exported_folders(workspace)
    if out.resolve() not in folders:
        private_folder(workspace.private)  # 0700, like every folder of subscriber data
        atomic_write(registry, "".join(f"{folder}\n" for folder in [*folders, out.resolve()]), private=True)


def exported_folders(workspace: Workspace) -> list[Path]:
    registry = workspace.private / EXPORTS
    return [Path(line) for line in registry.read_text(encoding="utf-8").splitlines()] if registry.is_file() else []


def forget_in_exports(workspace: Workspace, email: str) -> list[Path]:
    """Erasure in every export: the message files to `email` deleted and their manifest rows removed. Returns
    the export folders changed."""
    changed = []
    for out in exported_folders(workspace):
        manifest = out / MANIFEST
        if not manifest.is_file():
            continue
        with manifest.open(encoding="utf-8", errors="replace", newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [row for row in rows if not (row and row[0].lstrip("'").lower() == email.lower())]
        if len(kept) == len(rows):
            continue
        for row in rows:
            if row not in kept and len(row) > 1 and EXPORT_FILE.fullmatch(row[1]):
                safe_join(out, row[1]).unlink(missing_ok=True)
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write(manifest, text.getvalue(), private=True)
        changed.append(out)
    return changed


def _remove_earlier_export(out: Path, written: SeenKeys) -> None:
    """Delete the message files an earlier export into `out` wrote that this one did not, as its manifest lists
    them (names of the export's own pattern only: a doctored manifest cannot make us delete anything else)."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return
    with manifest.open(encoding="utf-8", errors="replace", newline="") as handle:
        rows = csv.reader(handle)
        next(rows, None)
        for row in rows:
            if len(row) > 1 and EXPORT_FILE.fullmatch(row[1]) and written.first_line(row[1], 0) is None:
                safe_join(out, row[1]).unlink(missing_ok=True)


async def _deliver_to_files(factory: MessageFactory, recipients: Iterator[Recipient], transport: FileTransport,
                            manifest, names: SeenKeys) -> int:  # fmt: skip
    """Write each message and its manifest row, remembering the names written (on disk); returns how many."""
    async with transport:
        for recipient in recipients:
            message = factory.compose(recipient)
            name = await transport.send(message)
            manifest.writerow(spreadsheet_row([recipient.email, name, message.message_id]))
            names.first_line(name, transport.count)
    return transport.count
