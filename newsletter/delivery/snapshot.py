"""The list of a send without --recipients: every confirmed subscriber, frozen when the send starts.

The snapshot is a recipients CSV in `.newsletter/snapshots/` (owner-only), so everything a send does with a
list (streaming, de-duplication, suppression asked a batch at a time, resuming from a byte offset, refusing a
changed list) works on it unchanged. A resumed send reads the snapshot its journal started from; a sign-up made
after the start waits for the next edition, while an unsubscribe is honoured at once (the suppression store).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..audience.recipients import RecipientFile
from ..audience.subscribers import store_path, write_snapshot
from ..base.errors import ContentError
from ..base.workspace import SNAPSHOTS_DIR, Workspace
from ..base.writer import atomic_write
from .journal import journal_path
from .journal.erase import set_recipients_print

NO_LIST = ("no --recipients and no confirmed subscribers: pass --recipients FILE.csv, or bring your list in with "
           "`newsletter subscribers import FILE.csv --source TEXT`")  # fmt: skip


def snapshot_path(workspace: Workspace, name: str) -> Path:
    return workspace.private / SNAPSHOTS_DIR / f"{name}.csv"


def subscriber_list(workspace: Workspace, edition_name: str) -> Path:
    """The recipients file of a send of `edition_name` to the subscriber list: written now for a new send, the
    one it started from for a send that is resuming."""
    path = snapshot_path(workspace, edition_name)
    if journal_path(workspace.root, edition_name).is_file():
        if not path.is_file():
            raise ContentError("this send was not started from the subscriber list (or its snapshot is gone): "
                               "run it with the --recipients it started with", path)  # fmt: skip
        return path
    return _snapshot(workspace, path)


def _snapshot(workspace: Workspace, path: Path) -> Path:
    """The confirmed subscribers written to `path`; a clear error when there are none."""
    if not store_path(workspace.root).is_file() or write_snapshot(store_path(workspace.root), path) == 0:
        path.unlink(missing_ok=True)
        raise ContentError(NO_LIST)
    return path


@contextlib.contextmanager
def exported_list(workspace: Workspace, edition_name: str) -> Iterator[Path]:
    """The subscriber list for an export (a dry run keeps no journal): a snapshot that is gone afterwards."""
    path = _snapshot(workspace, snapshot_path(workspace, f".export-{edition_name}"))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def forget_in_snapshots(workspace: Workspace, email: str) -> list[Path]:
    """Blank every row naming `email` in the snapshots (spaces of the same length: a resumed send's byte offsets
    and line numbers stay right, and a blank row is no recipient); the journals that started from a changed
    snapshot are told its new fingerprint, so they still resume. Returns the snapshots changed."""
    folder = workspace.private / SNAPSHOTS_DIR
    changed = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        if _blank_rows(path, email.lower().encode()):
            changed.append(path)
            journal = journal_path(workspace.root, path.stem)
            if journal.is_file():
                set_recipients_print(journal, str(path), RecipientFile(path).survey().sha256)  # what a resume compares
    return changed


def _blank_rows(path: Path, needle: bytes) -> bool:
    lines = path.read_bytes().splitlines(keepends=True)
    blanked = [b" " * len(line.rstrip(b"\r\n")) + line[len(line.rstrip(b"\r\n")) :] if needle in line.lower()
               else line for line in lines]  # fmt: skip
    if blanked == lines:
        return False
    atomic_write(path, b"".join(blanked), private=True)
    return True
