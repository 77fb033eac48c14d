"""The public side of a publication: its sent editions as web pages, an index of them, an Atom feed, and the
small pages of the unsubscribe flow. `serve` answers with these; `archive --out DIR` writes them as files.

Nothing here carries personal data: web versions are rendered for nobody in particular (`render` with
`web=True`: no name, no address, no token; a footer that says how to subscribe).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from ..base.errors import ConfigError, ContentError, NewsletterError
from ..base.model import Publication
from ..base.workspace import Workspace
from ..base.writer import make_folder, write_files
from ..delivery.journal import JournalReader, journal_path
from ..edition.inline import inline_css
from ..edition.load import EDITION_FILE, ISSUES_DIR, load_edition
from ..edition.render import render_edition, template_environment

FEED = "feed.xml"


@dataclass(frozen=True)
class ArchiveEntry:
    name: str
    subject: str
    preheader: str
    date: dt.date
    url: str  # relative to the archive's root: `NAME/`


def was_sent(root: Path, name: str) -> bool:
    """True once a send of the edition has delivered to at least one recipient."""
    path = journal_path(root, name)
    if not path.is_file():
        return False
    try:
        with JournalReader(path) as reader:
            return reader.counts()["sent"] > 0
    except NewsletterError:
        return False


def archive_entry(workspace: Workspace, name: str, drafts: bool = False) -> ArchiveEntry | None:
    """The edition as the archive lists it, or None when it is not public: not sent (unless `drafts`), or a
    draft that does not load."""
    root = workspace.root
    if not (workspace.issues / name / EDITION_FILE).is_file() or not (drafts or was_sent(root, name)):
        return None
    try:
        edition = load_edition(name, root)
    except NewsletterError:
        return None
    return ArchiveEntry(edition.name, edition.subject, edition.preheader, edition.date, f"{edition.name}/")


def archive_entries(workspace: Workspace, drafts: bool = False) -> list[ArchiveEntry]:
    """The editions the archive shows, newest first: those sent, or every one that loads with `drafts`."""
    folder = workspace.issues
    found = [archive_entry(workspace, child.name, drafts) for child in (folder.iterdir() if folder.is_dir() else [])]
    return sorted((entry for entry in found if entry), key=lambda e: (e.date, e.name), reverse=True)


def web_version(workspace: Workspace, name: str) -> str:
    """The edition's public web page: the email's HTML for nobody in particular, CSS inlined."""
    publication = workspace.publication
    rendered = render_edition(load_edition(name, workspace.root), publication, workspace.templates, web=True)
    return inline_css(rendered.html)


class Pages:
    """The small public pages (theme's colours, no JavaScript) from templates/page.html, compiled once: a new
    Jinja environment is costly to build, which a server must not pay per request."""

    def __init__(self, workspace: Workspace) -> None:
        publication = workspace.publication
        self.publication = publication
        self.template = template_environment(workspace.templates).get_template("page.html")

    def page(self, heading: str, paragraphs: list[str] = (), form: dict | None = None,
             editions: list[ArchiveEntry] | None = None, feed_url: str = "", back: str = "",
             signup: bool = True) -> str:  # fmt: skip
        """A page; every one but the sign-up page itself links the sign-up page (when `serve` has a site)."""
        site = self.publication.site_url
        return self.template.render(publication=self.publication, heading=heading, paragraphs=list(paragraphs),
                                    form=form, editions=editions, feed_url=feed_url, back=back,
                                    signup_url=f"{site}/subscribe" if site and signup else "")  # fmt: skip

    def index(self, entries: list[ArchiveEntry], base: str = "") -> str:
        linked = [replace(entry, url=f"{base}{entry.url}") for entry in entries]
        return self.page(f"{self.publication.name}: all editions", editions=linked, feed_url=f"{base}{FEED}")


def feed_base(publication: Publication) -> str:
    """Where the feed and its entries live, from the settings alone: a feed's ids must never come from a
    request's Host header, which anyone can set."""
    base = publication.site_url or publication.archive_url or publication.website_url
    if not base:
        raise ConfigError("[publication] site_url (or archive_url) is not set: the feed's links need the archive's "
                          "public address", publication.source)  # fmt: skip
    return base


def feed_xml(publication: Publication, entries: list[ArchiveEntry], site: str) -> bytes:
    """An Atom feed of the archive (feedgen), entries linking to their web versions under `site`."""
    from feedgen.feed import FeedGenerator

    site = site.rstrip("/")
    feed = FeedGenerator()
    feed.id(f"{site}/")
    feed.title(publication.name)
    feed.link(href=f"{site}/", rel="alternate")
    feed.link(href=f"{site}/{FEED}", rel="self")
    feed.language(publication.lang)
    newest = max((e.date for e in entries), default=dt.date(2000, 1, 1))
    feed.updated(dt.datetime.combine(newest, dt.time(), dt.UTC))
    for entry in reversed(entries):  # feedgen lists the last added first
        item = feed.add_entry()
        item.id(f"{site}/{entry.url}")
        item.title(entry.subject)
        item.link(href=f"{site}/{entry.url}")
        item.summary(entry.preheader or entry.subject)
        item.updated(dt.datetime.combine(entry.date, dt.time(), dt.UTC))
    return feed.atom_str(pretty=True)


def write_archive(workspace: Workspace, out: Path, drafts: bool = False) -> list[Path]:
    """The archive as static files for any static host: index.html, NAME/index.html per edition, feed.xml.
    Never into the newsletter's own folder or any folder holding editions: NAME/index.html would land beside,
    or over, the editions' sources."""
    root, publication = workspace.root, workspace.publication
    target = out.resolve()
    if target == root.resolve() or (target / ISSUES_DIR).exists() or root.resolve().is_relative_to(target):
        raise ContentError("is the newsletter's own folder (or holds issues/): choose an output folder of its own",
                           out)  # fmt: skip
    entries = archive_entries(workspace, drafts)
    files: dict[str, bytes | str] = {"index.html": Pages(workspace).index(entries)}
    for entry in entries:
        files[f"{entry.name}/index.html"] = web_version(workspace, entry.name)
    files[FEED] = feed_xml(publication, entries, feed_base(publication))
    make_folder(out)
    return write_files(out, files, durable=False)
