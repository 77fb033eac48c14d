"""The workspace: one newsletter's folder, read once where the program starts, then passed down.

A command, `serve` or a library caller builds one (`open_workspace(folder)`, or `Workspace(...)` from values
without touching the environment); every stage below takes it, or the part of it it needs, as an argument.
Nothing below the edge looks at the working directory or reads a setting: the publication, its secrets, the
delivery settings and the paths are all here, read from newsletter.toml, `.env` and the real environment once.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .addresses import parse_mailbox
from .config import (
    IMAPSettings,
    load_environment,
    load_publication,
    require_imap_settings,
)
from .dkim import DKIMKey, key_from_environment
from .model import Publication

ISSUES_DIR = "issues"
TEMPLATES_DIR = "templates"
BUILD_DIR = "build"
PRIVATE_DIR = ".newsletter"  # subscriber data: journals and stores, owner-only
SUPPRESSIONS_FILE = "suppressions.sqlite"
JOURNALS_DIR = "journal"  # one send journal per edition
SNAPSHOTS_DIR = "snapshots"  # the subscriber list of each send made without --recipients


@dataclass(frozen=True)
class Workspace:
    """The publication as plain data, its secrets, the delivery settings, and where everything lives.

    `settings` holds the environment and `.env` as read at the edge: the delivery settings (SMTP_*, IMAP_*,
    NEWSLETTER_TRANSPORT) are parsed from it when a command needs them (the transport its module names, the
    bounce mailbox `imap`), so a bad IMAP port never stops a build.
    """

    root: Path
    publication: Publication
    dkim: DKIMKey | None = field(default=None, repr=False)
    settings: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def issues(self) -> Path:
        return self.root / ISSUES_DIR

    @property
    def templates(self) -> Path:
        return self.root / TEMPLATES_DIR

    @property
    def build(self) -> Path:
        return self.root / BUILD_DIR

    @property
    def private(self) -> Path:
        return self.root / PRIVATE_DIR

    @property
    def journals(self) -> Path:
        return self.private / JOURNALS_DIR

    @property
    def suppressions(self) -> Path:
        return self.private / SUPPRESSIONS_FILE

    @functools.cached_property
    def imap(self) -> IMAPSettings:
        """The bounce mailbox's settings, or a ConfigError saying what is missing."""
        return require_imap_settings(self.settings)


def open_workspace(root: Path, environ: Mapping[str, str] | None = None) -> Workspace:
    """Read the newsletter in `root`: newsletter.toml, `.env` under the real environment (or `environ`), and
    the DKIM key the settings name, each once."""
    settings = load_environment(root, environ)
    publication = load_publication(root, settings)
    sender = parse_mailbox(publication.sender, "[publication] from", str(publication.source))
    return Workspace(root.resolve(), publication, key_from_environment(settings, sender.domain), settings)
