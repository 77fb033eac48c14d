"""`newsletter import`: a blog post saved as text, HTML or Markdown -> a Markdown article in an edition folder.

Saved pages carry more than the article: the site's name, "Go to Top" links, navigation, and the site's own
disclaimer and copyright line. The template adds the publication's disclaimer and copyright itself, so those are
dropped on import when they match; everything else of the article is kept, paragraph for paragraph.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..base.dates import find_date, parse_date
from ..base.errors import ContentError
from ..base.files import read_text
from ..base.model import Article, Publication
from ..base.workspace import Workspace
from ..base.writer import atomic_write, safe_join
from .load import EDITION_FILE, FRONT_MATTER_KEYS, ISSUES_DIR, check_edition_name, split_front_matter, toml_string
from .verify import normalise

CHROME = {
    "go to top", "back to top", "top", "skip to content", "skip to main content", "share", "share this",
    "print", "menu", "home", "read more", "previous post", "next post", "leave a comment",
}  # fmt: skip
_BULLET = re.compile(r"^\s*[•●▪◦\-*–]\s+")
_NUMBERED = re.compile(r"^\s*(\d{1,3})[.)]\s+")
_COPYRIGHT = re.compile(r"^(all (materials|content) )?(copyright|©|\(c\))|all rights reserved\.?$", re.I)


@dataclass(frozen=True)
class ImportedFile:
    """Where the article was written, and what the user should still fix in it."""

    path: Path
    warnings: tuple[str, ...] = ()


def import_article(source: Path, workspace: Workspace, into: str | Path | None = None) -> ImportedFile:
    """Import `source` into an edition of `workspace` (created when missing, subject from the title)."""
    root = workspace.root
    article = parse_source(source, workspace.publication)
    folder = _edition_folder(into, article.title, root)
    target = safe_join(folder, slugify(article.title) + ".md")
    if target.exists():
        raise ContentError("an article with this title is already in the edition; remove it first", target)
    atomic_write(target, article_markdown(article))
    _add_to_edition(folder, article, target.name)
    warnings = tuple(
        f"image {src} has no alt text, which the build requires: describe what it shows between the brackets of "
        f"![]({src}) in {target.name}"
        for src in missing_alt_text(article)
    )
    if article.image and not article.image_alt:
        warnings += (f"the featured image {article.image} has no alt text, which the build requires: describe what "
                     f"it shows as image_alt in {target.name}",)  # fmt: skip
    return ImportedFile(target, warnings)


def parse_source(source: Path, publication: Publication) -> Article:
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
    if not article.body_markdown.strip():
        raise ContentError("no article text found", source)
    return article


def _from_text(text: str, source: Path, publication: Publication) -> Article:
    """Plain text: [site name], title, paragraphs separated by blank lines, `•` lists, then the site's footer."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
    blocks = [b for b in blocks if not _is_boilerplate(b, publication)]
    if not blocks:
        raise ContentError("no article text found", source)
    byline_at = next((i for i in (1, 2) if i < len(blocks) and parse_byline(blocks[i])), None)
    if byline_at == 2 or (byline_at is None and len(blocks) > 2 and all(map(_is_heading_line, blocks[:2]))):
        blocks = blocks[1:]  # the first short line is the site's name, the second the title
    author, date = parse_byline(blocks[1]) if len(blocks) > 1 and parse_byline(blocks[1]) else ("", None)
    title, body = blocks[0].strip(), blocks[2:] if author or date else blocks[1:]
    return Article(
        path=source,
        title=" ".join(title.split()),
        body_markdown="\n\n".join(_text_block(b) for b in body),
        author=author,
        date=date,
    )


_BYLINE_WORDS = re.compile(r"^(?:posted|published|written|updated)?\s*(?:on\b\s*)?", re.I)
_SEPARATORS = " \t·•|—–-,:"


def parse_byline(block: str) -> tuple[str, dt.date | None] | None:
    """(author, date) of a byline such as "Posted January 3, 2026 by Mara Lindqvist" or "By Mara Lindqvist ·
    3 Jan 2026", or None when the block is not a byline (one short line of a date and/or "by" and a name)."""
    line = " ".join(block.split())
    if "\n" in block.strip() or len(line) > 120:
        return None
    date, match = find_date(line)
    rest = line[: match.start()] + " " + line[match.end() :] if match else line
    rest = _BYLINE_WORDS.sub("", rest.strip(_SEPARATORS)).strip(_SEPARATORS)
    author = re.fullmatch(r"by\s+(.+?)", rest, re.I)
    words = author[1].strip(_SEPARATORS).split() if author else []
    if 0 < len(words) <= 6 and words[0][0].isupper() and words[-1][0].isupper():  # a name, not "by the river"
        return " ".join(words), date
    return ("", date) if date and not rest else None


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


def _from_markdown(text: str, source: Path) -> Article:
    meta, body, _ = split_front_matter(text, source)
    title = str(meta.get("title", ""))
    if not title:
        match = re.search(r"^#\s+(.+)$", body, re.M)
        if match:
            title, body = match[1].strip(), body[: match.start()] + body[match.end() :]
    return Article(
        path=source,
        title=title,
        body_markdown=body.strip(),
        canonical_url=str(meta.get("canonical_url", "")),
        author=str(meta.get("author", "")),
        date=parse_date(meta.get("date")),
        summary=str(meta.get("summary", "")),
        image=str(meta.get("image", "")),
        image_alt=str(meta.get("image_alt", "")),
    )


class _PageMeta(HTMLParser):
    """What a blog page says about its article: title, first <h1>, canonical URL, author, publication date."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.h1: list[str] = []
        self.featured: tuple[str, str] | None = None  # (src, alt) of the post's featured image
        self._in: str = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img" and self.featured is None and _FEATURED.search(values.get("class", "")):
            self.featured = (values.get("src", ""), " ".join(values.get("alt", "").split()))
        if tag == "title" or (tag == "h1" and not self.h1):
            self._in = tag
        elif tag == "link" and values.get("rel", "").lower() == "canonical":
            self.meta.setdefault("canonical_url", values.get("href", ""))
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key in {"og:url", "author", "article:published_time", "og:title", "og:image", "og:image:alt"}:
                self.meta.setdefault(key, values.get("content", ""))
        elif tag == "time" and values.get("datetime"):
            self.meta.setdefault("article:published_time", values["datetime"])

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.meta["title"] = self.meta.get("title", "") + data
        elif self._in == "h1":
            self.h1.append(data)


_IMG = re.compile(r"<img\b[^>]*>", re.I | re.S)
# WordPress's post thumbnail, and the names other themes give a post's lead image
_FEATURED = re.compile(r"\b(wp-post-image|featured-image|post-thumbnail|hero-image)\b", re.I)
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.I | re.S)


def _with_alt_text(page: str) -> str:
    """Give images without alt text the page's own words for them: their figure's caption, else their title."""

    def caption_alt(figure: re.Match) -> str:
        caption = re.search(r"<figcaption\b[^>]*>(.*?)</figcaption>", figure[0], re.I | re.S)
        words = " ".join(html.unescape(re.sub(r"<[^>]+>", "", caption[1])).split()) if caption else ""
        return _IMG.sub(lambda img: _set_alt(img[0], words), figure[0]) if words else figure[0]

    def title_alt(img: re.Match) -> str:
        title = re.search(r"\btitle\s*=\s*([\"'])(.*?)\1", img[0], re.I | re.S)
        return _set_alt(img[0], html.unescape(title[2]).strip()) if title else img[0]

    return _IMG.sub(title_alt, _FIGURE.sub(caption_alt, page))


def _set_alt(img: str, words: str) -> str:
    """`img` with alt="words", unless it already has a non-empty alt."""
    if not words or re.search(r"\balt\s*=\s*([\"'])\s*[^\"'\s]", img, re.I):
        return img
    img = re.sub(r"\s\balt\s*=\s*([\"'])\s*\1", "", img, flags=re.I)
    return img[:4] + f' alt="{html.escape(words)}"' + img[4:]


def _from_html(text: str, source: Path, publication: Publication) -> Article:
    """The article of a saved blog page, without the page around it.

    trafilatura finds the main content (comments, share buttons, related posts, author boxes, sign-up widgets and
    navigation stay out) and resolves relative links and images against the page's canonical URL, which an email
    needs: it has no address of its own that `/book` could be relative to."""
    import trafilatura  # only `import` of an HTML page needs it

    page_meta = _PageMeta()
    page_meta.feed(text)
    page_meta.close()
    meta = page_meta.meta
    canonical = meta.get("canonical_url") or meta.get("og:url", "")
    canonical = canonical if canonical.startswith(("https://", "http://")) else ""
    page = _with_alt_text(text)
    found = trafilatura.bare_extraction(page, url=canonical or None, with_metadata=True, include_comments=False)
    markdown = trafilatura.extract(
        page, url=canonical or None, output_format="markdown", include_links=True, include_images=True,
        include_tables=True, include_comments=False, favor_precision=True, with_metadata=False,
    ) or ""  # fmt: skip
    title = " ".join("".join(page_meta.h1).split()) or meta.get("og:title", "") or (found and found.title) or ""
    title = html.unescape(title).strip()
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", markdown) if b.strip()]
    if blocks and blocks[0].lstrip("# ").strip() == title:
        blocks = blocks[1:]  # the title is the front matter's
    body = "\n\n".join(b for b in blocks if not _is_boilerplate(b, publication))
    image, image_alt = _featured_image(page_meta, canonical, body)
    return Article(
        path=source,
        title=title,
        body_markdown=body,
        image=image,
        image_alt=image_alt,
        canonical_url=canonical,
        author=meta.get("author", "") or (found and found.author) or "",
        date=parse_date(meta.get("article:published_time", "") or (found and found.date) or ""),
    )


def _featured_image(page: _PageMeta, canonical: str, body: str) -> tuple[str, str]:
    """The post's featured image and its alt text (the theme's post thumbnail, else og:image), made absolute
    against the canonical URL; nothing when the body shows it already or when it is not an http(s) image."""
    src, alt = page.featured or (page.meta.get("og:image", ""), page.meta.get("og:image:alt", ""))
    src = urllib.parse.urljoin(canonical, html.unescape(src.strip())) if src.strip() else ""
    if not src.startswith(("https://", "http://")) or src in body:
        return "", ""
    return src, html.unescape(alt).strip()


def missing_alt_text(article: Article) -> list[str]:
    """Images of the imported body that still have no alt text (the build refuses them)."""
    return re.findall(r"!\[\s*\]\(([^)\s]+)", article.body_markdown)


def slugify(title: str) -> str:
    """`Is Physical Therapy Worth It?` -> `is-physical-therapy-worth-it`, `Боль в спине` -> `боль-в-спине`:
    letters and digits of any script, so every title gets a readable name of its own; safe as a file and
    folder name, and a valid edition name."""
    slug = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFC", title).lower()).strip("-")[:60].strip("-")
    return slug or "article"


def article_markdown(article: Article) -> str:
    meta = []
    for key in FRONT_MATTER_KEYS:  # in the order the model lists them, title first
        value = getattr(article, key)
        if value:
            meta.append(f"{key} = {value.isoformat() if isinstance(value, dt.date) else toml_string(value)}")
    return "+++\n" + "\n".join(meta) + "\n+++\n\n" + article.body_markdown.strip() + "\n"


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


def _add_to_edition(folder: Path, article: Article, file_name: str) -> None:
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
