"""`newsletter import`: a blog post saved as text, HTML or Markdown -> a Markdown article in an edition folder.

Saved pages carry more than the article: the site's name, "Go to Top" links, navigation, and the site's own
disclaimer and copyright line. The template adds the publication's disclaimer and copyright itself, so those are
dropped on import when they match; everything else of the article is kept, paragraph for paragraph.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import html2text

from .errors import ContentError
from .load import EDITION_FILE, ISSUES_DIR, check_edition_name, read_text, split_front_matter
from .model import Publication
from .verify import normalise
from .writer import atomic_write, safe_join

CHROME = {
    "go to top", "back to top", "top", "skip to content", "skip to main content", "share", "share this",
    "print", "menu", "home", "read more", "previous post", "next post", "leave a comment",
}  # fmt: skip
_BULLET = re.compile(r"^\s*[•●▪◦\-*–]\s+")
_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+")
_COPYRIGHT = re.compile(r"^(all (materials|content) )?(copyright|©|\(c\))|all rights reserved\.?$", re.I)
# Page furniture, and <time> (the date goes into the front matter and the template's byline).
_DROP_TAGS = {"nav", "script", "style", "header", "footer", "aside", "form", "noscript", "iframe", "svg", "button",
              "time"}  # fmt: skip
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass(frozen=True)
class ImportedArticle:
    title: str
    body: str
    canonical_url: str = ""
    author: str = ""
    date: dt.date | None = None
    summary: str = ""
    image: str = ""
    image_alt: str = ""


def import_article(
    source: Path, publication: Publication, into: str | Path | None = None, root: Path | None = None
) -> Path:
    """Import `source` into an edition (created when missing, subject from the title); returns the article path."""
    root = root or Path.cwd()
    article = parse_source(source, publication)
    folder = _edition_folder(into, article.title, root)
    target = safe_join(folder, slugify(article.title) + ".md")
    if target.exists():
        raise ContentError("an article with this title is already in the edition; remove it first", target)
    atomic_write(target, article_markdown(article))
    _add_to_edition(folder, article, target.name)
    return target


def parse_source(source: Path, publication: Publication) -> ImportedArticle:
    """Pick the reader by file type: .html/.htm, .md/.markdown, anything else as plain text."""
    text = read_text(source)
    suffix = source.suffix.lower()
    if suffix in {".html", ".htm"}:
        article = _from_html(text, source, publication)
    elif suffix in {".md", ".markdown"}:
        article = _from_markdown(text, source)
    else:
        article = _from_text(text, source, publication)
    if not article.title.strip():
        raise ContentError("no title found", source)
    if not article.body.strip():
        raise ContentError("no article text found", source)
    return article


def _from_text(text: str, source: Path, publication: Publication) -> ImportedArticle:
    """Plain text: [site name], title, paragraphs separated by blank lines, `•` lists, then the site's footer."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
    blocks = [b for b in blocks if not _is_boilerplate(b, publication)]
    if not blocks:
        raise ContentError("no article text found", source)
    heading = [b for b in blocks[:2] if _is_heading_line(b)]
    if len(heading) == 2 and len(blocks) > 2:
        blocks = blocks[1:]  # the first short line is the site's name, the second the title
    title, body = blocks[0].strip(), blocks[1:]
    return ImportedArticle(title=" ".join(title.split()), body="\n\n".join(_text_block(b) for b in body))


def _is_heading_line(block: str) -> bool:
    return "\n" not in block.strip() and len(block) <= 120 and not block.rstrip().endswith((".", ":", ";"))


def _is_boilerplate(block: str, publication: Publication) -> bool:
    """Page chrome, the copyright line, and the publication's own disclaimer (the template adds those)."""
    plain = normalise(block)
    return (
        plain.strip(" .!>»↑") in CHROME
        or plain == normalise(publication.disclaimer)
        or plain == normalise(publication.copyright)
        or (len(plain) < 160 and bool(_COPYRIGHT.search(plain)))
    )


def _text_block(block: str) -> str:
    """One block of plain text as Markdown: bullet and numbered lists kept, wrapped lines joined."""
    lines = [line for line in block.split("\n") if line.strip()]
    start = len(lines)  # where the list at the end of the block begins ("Warning signs:" then bullet lines)
    while start > 0 and (_BULLET.match(lines[start - 1]) or _NUMBERED.match(lines[start - 1])):
        start -= 1
    lead = escape_markdown(" ".join(line.strip() for line in lines[:start]))
    if start == len(lines):
        return lead
    items = []
    for line in lines[start:]:
        number = _NUMBERED.match(line)
        marker = f"{number[1]}." if number else "-"
        items.append(f"{marker} {escape_markdown(_NUMBERED.sub('', _BULLET.sub('', line), count=1).strip())}")
    return "\n\n".join(part for part in (lead, "\n".join(items)) if part)


def escape_markdown(text: str) -> str:
    """Escape what would turn plain prose into Markdown syntax (emphasis, links, headings, list markers)."""
    text = re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)
    text = re.sub(r"^(\d+)([.)]\s)", r"\1\\\2", text)
    return re.sub(r"^(#|>|[-+]\s)", r"\\\1", text)


def _from_markdown(text: str, source: Path) -> ImportedArticle:
    meta, body, _ = split_front_matter(text, source)
    title = str(meta.get("title", ""))
    if not title:
        match = re.search(r"^#\s+(.+)$", body, re.M)
        if match:
            title, body = match[1].strip(), body[: match.start()] + body[match.end() :]
    date = meta.get("date")
    if isinstance(date, dt.datetime):
        date = date.date()
    return ImportedArticle(
        title=title,
        body=body.strip(),
        canonical_url=str(meta.get("canonical_url", "")),
        author=str(meta.get("author", "")),
        date=date if isinstance(date, dt.date) else _parse_date(str(date or "")),
        summary=str(meta.get("summary", "")),
        image=str(meta.get("image", "")),
        image_alt=str(meta.get("image_alt", "")),
    )


class _ArticleExtractor(HTMLParser):
    """Keeps the article's HTML (the <article>, else <main>, else <body>) minus navigation and scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.parts: dict[str, list[str]] = {"article": [], "main": [], "body": []}
        self.open: list[str] = []
        self.skip_depth = 0
        self.meta: dict[str, str] = {}
        self._in_title = False
        self.h1: list[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self._collect_meta(tag, values)
        if self.skip_depth or tag in _DROP_TAGS:
            self.skip_depth += tag not in _VOID
            return
        if tag == "h1" and not self.h1:
            self._in_h1 = True
        self._emit(self.get_starttag_text() or "")
        if tag in self.parts:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip_depth:
            self.skip_depth -= tag not in _VOID
            return
        if tag == "title":
            self._in_title = False
        if tag == "h1":
            self._in_h1 = False
        if tag in self.open:
            self.open.remove(tag)
        self._emit(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.meta["title"] = self.meta.get("title", "") + data
        if self.skip_depth:
            return
        if self._in_h1:
            self.h1.append(data)
        self._emit(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")

    def _emit(self, chunk: str) -> None:
        for container in self.open:
            self.parts[container].append(chunk)

    def _collect_meta(self, tag: str, values: dict[str, str]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "link" and values.get("rel", "").lower() == "canonical":
            self.meta.setdefault("canonical_url", values.get("href", ""))
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key in {"og:url", "author", "article:published_time", "og:title"}:
                self.meta.setdefault(key, values.get("content", ""))
        elif tag == "time" and values.get("datetime"):
            self.meta.setdefault("article:published_time", values["datetime"])

    def article_html(self) -> str:
        return "".join(self.parts["article"] or self.parts["main"] or self.parts["body"])


def _from_html(text: str, source: Path, publication: Publication) -> ImportedArticle:
    extractor = _ArticleExtractor()
    extractor.feed(text)
    extractor.close()
    meta = extractor.meta
    title = " ".join("".join(extractor.h1).split()) or meta.get("og:title", "") or meta.get("title", "")
    fragment = re.sub(r"<h1\b.*?</h1>", "", extractor.article_html() or text, count=1, flags=re.S | re.I)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.unicode_snob = True
    converter.ul_item_mark = "-"
    blocks = [b for b in re.split(r"\n\s*\n", converter.handle(fragment)) if b.strip()]
    body = "\n\n".join(b.strip("\n") for b in blocks if not _is_boilerplate(b, publication))
    canonical = meta.get("canonical_url") or meta.get("og:url", "")
    return ImportedArticle(
        title=html.unescape(title).strip(),
        body=body,
        canonical_url=canonical if canonical.startswith(("https://", "http://")) else "",
        author=meta.get("author", ""),
        date=_parse_date(meta.get("article:published_time", "")),
    )


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def slugify(title: str) -> str:
    """`Is Physical Therapy Worth It?` -> `is-physical-therapy-worth-it`, `Боль в спине` -> `боль-в-спине`:
    letters and digits of any script, so every title gets a readable name of its own; safe as a file and
    folder name, and a valid edition name."""
    slug = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", title).lower()).strip("-")[:60].strip("-")
    return slug or "article"


def toml_string(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def article_markdown(article: ImportedArticle) -> str:
    meta = [f"title = {toml_string(article.title)}"]
    if article.author:
        meta.append(f"author = {toml_string(article.author)}")
    if article.date:
        meta.append(f"date = {article.date.isoformat()}")
    for key in ("summary", "canonical_url", "image", "image_alt"):
        if getattr(article, key):
            meta.append(f"{key} = {toml_string(getattr(article, key))}")
    return "+++\n" + "\n".join(meta) + "\n+++\n\n" + article.body.strip() + "\n"


def _edition_folder(into: str | Path | None, title: str, root: Path) -> Path:
    """`--into` as a bare name (issues/NAME) or a path to an edition folder; default: a new edition named after
    the title. Names follow the one edition-name rule, and a path may not climb with `..`."""
    if into is None:
        return safe_join(root / ISSUES_DIR, check_edition_name(slugify(title)))
    into_path = Path(into)
    if ".." in into_path.parts:
        raise ContentError("edition path escapes the output folder: '..' is not allowed in --into", into_path)
    check_edition_name(into_path.name, into_path)
    if len(into_path.parts) > 1 or into_path.is_absolute():
        return into_path if into_path.is_absolute() else root / into_path
    return safe_join(root / ISSUES_DIR, str(into))


def _add_to_edition(folder: Path, article: ImportedArticle, file_name: str) -> None:
    """Create issue.toml for a new edition, or append the article to an explicit `articles` list."""
    path = folder / EDITION_FILE
    if not path.exists():
        atomic_write(
            path,
            f"subject = {toml_string(article.title)}\n"
            f"date = {dt.date.today().isoformat()}\n"
            f"articles = [{toml_string(file_name)}]\n",
        )
        return
    text = read_text(path)
    match = re.search(r"^articles\s*=\s*\[(.*?)\]", text, re.M | re.S)
    if match:
        items = match[1].rstrip().rstrip(",")
        joined = f"{items}, {toml_string(file_name)}" if items.strip() else toml_string(file_name)
        atomic_write(path, text[: match.start(1)] + joined + text[match.end(1) :])
