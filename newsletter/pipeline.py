"""The library API: load -> render -> inline -> verify -> compose, and the file outputs of build and export.

The CLI calls these functions and nothing else of the core; a Python user can call them directly. Each raises a
`NewsletterError` on bad input and writes nothing until every check has passed.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

from .addresses import parse_mailbox
from .compose import ComposedMessage, MessageFactory
from .config import load_publication
from .errors import CheckFailed
from .inline import inline_css
from .load import load_edition, read_text
from .model import Publication, Recipient, RenderedEdition
from .recipients import RecipientList, load_recipients, suppressed_addresses
from .render import render_edition
from .review import ReviewData, review_page
from .toolchecks import run_tool_checks
from .transport import EXPORT_FILE, FileTransport, run_deliveries
from .verify import check_rendered, image_origin, publication_problems
from .writer import atomic_write, csv_text, make_folder, safe_join, write_files

BUILD_DIR = "build"
MANIFEST = "manifest.csv"


def render_checked(
    edition: str | Path,
    root: Path | None = None,
    extra_fields: tuple[str, ...] = (),
    publication: Publication | None = None,
) -> RenderedEdition:
    """Load, render and inline an edition, then run every check; raises CheckFailed listing all problems."""
    root = root or Path.cwd()
    publication = publication or load_publication(root)
    loaded = load_edition(edition, root)
    rendered = render_edition(loaded, publication, root, extra_fields)
    inlined = replace(rendered, html=inline_css(rendered.html))
    problems = check_rendered(inlined)
    if problems:
        raise CheckFailed(problems, loaded.folder)
    return inlined


def placeholder_recipient(publication: Publication) -> Recipient:
    """The placeholder recipient that `build` addresses its .eml to (`test_recipient` in newsletter.toml)."""
    address = parse_mailbox(
        publication.test_recipient, "[publication] test_recipient", str(publication.source or "newsletter.toml")
    )
    return Recipient(email=address.addr_spec, name=address.display_name)


@dataclass(frozen=True)
class EditionPreview:
    """The edition as the test recipient gets it: both parts decoded, and the whole message."""

    rendered: RenderedEdition
    text: str
    html: str
    message: ComposedMessage


def preview_edition(edition: str | Path, root: Path | None = None) -> EditionPreview:
    """Render, check and compose the edition for the placeholder test recipient."""
    rendered = render_checked(edition, root)
    factory = MessageFactory(rendered)
    recipient = placeholder_recipient(rendered.publication)
    text, html = factory.personalise(recipient)
    return EditionPreview(rendered, text, html, factory.compose(recipient))


def check_edition(edition: str | Path, root: Path | None = None, tools: bool = True) -> tuple[EditionPreview, list]:
    """Every check: the built-in ones and the publication's settings (raising CheckFailed) and, with `tools`,
    the real-tool ones (returned)."""
    preview = preview_edition(edition, root)
    publication = preview.rendered.publication
    problems = publication_problems(publication)
    if problems:
        raise CheckFailed(problems, publication.source)
    origin = functools.partial(image_origin, preview.rendered.edition)
    results = run_tool_checks(preview.html, preview.message.data, root, origin) if tools else []
    return preview, results


def review_data(preview: EditionPreview, tool_checks: list | None = None) -> ReviewData:
    note = "" if tool_checks else "Checks by real tools (Chromium, axe-core, SpamAssassin, Nu): `newsletter check`"
    edition = preview.rendered.edition
    return ReviewData(edition.subject, edition.preheader, preview.html, preview.text, preview.message.data,
                      tool_checks=tool_checks or [], tools_note=note)  # fmt: skip


@dataclass(frozen=True)
class BuildResult:
    out: Path
    files: list[Path]
    message: ComposedMessage
    html_bytes: int


def build_edition(edition: str | Path, out: Path | None = None, root: Path | None = None) -> BuildResult:
    """Write email.html, email.txt, email.eml (for the test recipient) and review.html into build/<edition>/."""
    root = root or Path.cwd()
    preview = preview_edition(edition, root)
    out = out or safe_join(root / BUILD_DIR, preview.rendered.edition.name)
    files = write_files(out, {
        "email.html": preview.html,
        "email.txt": preview.text,
        "email.eml": preview.message.data,
        "review.html": review_page(review_data(preview)),
    })  # fmt: skip
    return BuildResult(out, files, preview.message, len(preview.html.encode("utf-8")))


@dataclass
class ExportResult:
    out: Path
    written: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def prepare_for_recipients(
    edition: str | Path, recipients_csv: Path, root: Path | None = None, apply_suppression: bool = True
) -> tuple[MessageFactory, RecipientList]:
    """Read the recipients, then render the edition once with their CSV columns available to templates.

    `send` passes apply_suppression=False and applies the list itself at every run, so an unsubscribe that
    arrives mid-send is honoured without making the recipients list look changed.
    """
    root = root or Path.cwd()
    publication = load_publication(root)
    suppressed = suppressed_addresses(publication, root) if apply_suppression else frozenset()
    recipients = load_recipients(recipients_csv, suppressed)
    rendered = render_checked(edition, root, recipients.columns, publication)
    return MessageFactory(rendered), recipients


def export_edition(edition: str | Path, recipients_csv: Path, out: Path, root: Path | None = None) -> ExportResult:
    """The dry run: one .eml per valid recipient plus manifest.csv, delivered through the same transport
    interface and the same composition as a send, into files. Imports nothing that can open a socket."""
    factory, recipients = prepare_for_recipients(edition, recipients_csv, root)
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
