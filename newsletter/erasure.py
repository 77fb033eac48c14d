"""`newsletter forget ADDRESS`: erasure on request. The subscriber's row and consent record are deleted; in the
suppression store and every send journal the address becomes a keyed hash, which still stops any mail to it
(a send hashes each recipient's key to compare) while no file names the person; snapshots and exports lose
their rows. What the tool cannot rewrite (a recipients CSV or suppression file the publisher keeps) is named,
and so is any file under `.newsletter/`, `build/` or an export folder that still holds the address."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .audience.subscribers import SubscriberStore
from .audience.subscribers import store_path as subscribers_path
from .audience.suppressions import SuppressionStore
from .audience.tokens import forgotten_marks, required_keys
from .base.addresses import mailbox_key, split_mailbox
from .base.errors import ContentError
from .base.workspace import Workspace
from .delivery.export import exported_folders, forget_in_exports
from .delivery.journal import JournalReader, sent_editions
from .delivery.journal.erase import forget_in_journal
from .delivery.snapshot import forget_in_snapshots


@dataclass
class Erased:
    address: str
    subscriber: bool = False  # a subscriber row and consent record were deleted
    journals: list[str] = field(default_factory=list)  # editions whose journal named the address
    snapshots: list[Path] = field(default_factory=list)
    exports: list[Path] = field(default_factory=list)
    your_files: list[Path] = field(default_factory=list)  # the publisher's own files that still name it
    still_named: list[Path] = field(default_factory=list)  # anything else that does (should stay empty)


def forget(workspace: Workspace, address: str) -> Erased:
    """Erase `address` everywhere this newsletter keeps it (see the module's docstring)."""
    _, email, problem = split_mailbox(address)
    if problem:
        raise ContentError(problem)
    key = mailbox_key(email)
    mark = forgotten_marks(required_keys(workspace.publication.unsubscribe_secret, "forget"), key)[0]
    erased = Erased(email)
    if subscribers_path(workspace.root).is_file():
        with SubscriberStore(subscribers_path(workspace.root)) as subscribers:
            erased.subscriber = subscribers.remove(email)
    with SuppressionStore(workspace.suppressions) as suppressions:
        suppressions.forget(key, mark)
    journals = sent_editions(workspace.root)
    erased.journals = [path.stem for path in journals if forget_in_journal(path, key, email, mark)]
    erased.snapshots = forget_in_snapshots(workspace, email)
    erased.exports = forget_in_exports(workspace, email)
    erased.your_files = [path for path in _publisher_files(workspace, journals) if _names(path, email)]
    places = [workspace.private, workspace.build, *exported_folders(workspace)]
    erased.still_named = [path for place in places for path in _files(place) if _names(path, email)]
    return erased


def _publisher_files(workspace: Workspace, journals: list[Path]) -> list[Path]:
    """The lists the publisher keeps: each send's --recipients file and the publication's suppression file."""
    files = set()
    for path in journals:
        with JournalReader(path) as journal:
            listed = journal.meta().get("recipients_file", "")
        if listed and not Path(listed).resolve().is_relative_to(workspace.private.resolve()):
            files.add(Path(listed))
    if workspace.publication.suppression_file:
        files.add(workspace.root / workspace.publication.suppression_file)
    return sorted(files)


def _files(folder: Path) -> list[Path]:
    return [Path(top) / name for top, _, names in os.walk(folder) for name in names] if folder.is_dir() else []


def _names(path: Path, email: str) -> bool:
    """Whether the file's bytes hold the address, in any case (what `grep -ri` would find)."""
    try:
        return email.lower().encode() in path.read_bytes().lower()
    except OSError:
        return False
