"""Stage 2, render: an `Edition` -> the HTML and plain-text parts, with recipient fields left as placeholders.

Markdown, Jinja and html2text run once per edition. Anything that differs per recipient (name, address,
unsubscribe link, other CSV columns) is rendered as an opaque placeholder token that the compose stage fills in,
so 10,000 recipients cost 10,000 string joins, not 10,000 renders.
"""

from __future__ import annotations

import dataclasses
import html
import re
import textwrap
import traceback
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import html2text
import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..base.errors import ContentError
from ..base.model import Article, Edition, Publication, RenderedEdition
from .placeholders import RecipientPlaceholders, placeholder_key

PACKAGE_TEMPLATES = Path(__file__).parent.parent / "templates"
HTML_TEMPLATE = "email.html"
TEXT_TEMPLATE = "email.txt"
TEXT_WIDTH = 72
BASE_RECIPIENT_FIELDS = ("email", "name", "first_name", "unsubscribe_url")


def template_environment(templates: Path | None) -> jinja2.Environment:
    """The Jinja environment for one render of one edition (costly to build, so never per recipient).

    A workspace's `templates/` folder (`templates`) overrides any file of the packaged default theme. It is built
    anew per edition rather than cached, so a theme file added or edited since the last build (say, while
    `preview` runs) is always seen.
    """
    folders = [templates, PACKAGE_TEMPLATES] if templates is not None else [PACKAGE_TEMPLATES]
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders])
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap_text
    env.filters["image_text"] = image_text
    return env


@lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    """CommonMark with tables; raw HTML is escaped and markdown-it refuses javascript:/vbscript:/data: links."""
    return MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")


def markdown_to_html(markdown: str) -> str:
    return markdown_parser().render(markdown)


def html_to_text(fragment: str) -> str:
    """Plain text for one article, with the settings that read like a hand-written email (docs/pitfalls.md).

    html2text's own wrapping breaks at hyphens ("post-" / "operative"), so it emits unwrapped lines and
    `wrap_text` wraps them, keeping list and quote indentation. Tables and headings are laid out here, not by
    html2text (which writes Markdown pipes and `##`): tables as aligned columns, headings underlined.
    """
    blocks: list[str] = []

    def stand_in(text: str) -> str:
        blocks.append(text)
        return f"<p>XNLBLOCK{len(blocks) - 1:04d}</p>"

    fragment = re.sub(r"<table\b.*?</table>", lambda m: stand_in(text_table(m[0])), fragment, flags=re.S)
    fragment = _IMAGE.sub(lambda m: html.escape(image_text(html.unescape(m[1] or ""))), fragment)
    fragment = re.sub(r"<h[1-6]>(.*?)</h[1-6]>", lambda m: stand_in(text_heading(m[1])), fragment, flags=re.S)
    text = wrap_text(_html2text(fragment).strip("\n"))
    return re.sub(r"XNLBLOCK(\d{4})", lambda m: blocks[int(m[1])], text)


_IMAGE = re.compile(r"<img\b[^>]*?\balt=\"([^\"]*)\"[^>]*>|<img\b[^>]*>", re.S)


def image_text(alt: str) -> str:
    """An image as the text part shows it: a reader of the text alone learns that there was one, and what."""
    return f"[Image: {' '.join(alt.split())}]" if alt.strip() else "[Image]"


def _inline_text(html_fragment: str) -> str:
    """The words of a bit of inline HTML (a cell, a heading), on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", html_fragment)).split())


def text_heading(html_fragment: str) -> str:
    """A heading as a hand-written text email has it: the words, underlined."""
    words = _inline_text(html_fragment)
    return f"{words}\n{'-' * min(len(words), TEXT_WIDTH)}"


def text_table(table_html: str, width: int = TEXT_WIDTH) -> str:
    """A table as aligned columns within `width`, the header underlined; cells too wide for their share of the
    line wrap within their column."""
    rows = [[_inline_text(cell) for cell in re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", row, flags=re.S)]
            for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", table_html, flags=re.S)]  # fmt: skip
    rows = [row for row in rows if row]
    if not rows:
        return ""
    count = max(len(row) for row in rows)
    rows = [row + [""] * (count - len(row)) for row in rows]
    widths = [max(1, *(len(row[i]) for row in rows)) for i in range(count)]
    gap = 2
    while sum(widths) + gap * (count - 1) > width and max(widths) > 8:
        widths[widths.index(max(widths))] -= 1  # take room from the widest column until the table fits
    lines = []
    for number, row in enumerate(rows):
        cells = [textwrap.wrap(cell, w, break_long_words=True) or [""] for cell, w in zip(row, widths, strict=True)]
        for depth in range(max(len(c) for c in cells)):
            parts = [(c[depth] if depth < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
            lines.append((" " * gap).join(parts).rstrip())
        if number == 0 and "<th" in table_html:
            lines.append((" " * gap).join("-" * w for w in widths))
    return "\n".join(lines)


def _html2text(fragment: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_tables = False
    converter.inline_links = False
    converter.protect_links = True
    converter.wrap_links = False
    converter.unicode_snob = True
    converter.ul_item_mark = "-"
    converter.ignore_emphasis = True
    return converter.handle(fragment)


_LINE_PREFIX = re.compile(r"^(\s*(?:>\s?)*(?:[-*+]\s+|\d+\.\s+)?)")


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap each line to `width` without breaking words, URLs or hyphenated words; list items and quotes keep
    their marker and indent their continuation lines. Table rows and link references are left as they are."""
    lines = []
    for line in text.split("\n"):
        if len(line) <= width or line.lstrip().startswith(("|", "[")) or "|" in line or line.startswith("    "):
            lines.append(line)
            continue
        prefix = _LINE_PREFIX.match(line)[1]
        indent = re.sub(r"[^>\s]", " ", prefix)
        lines.append(
            textwrap.fill(
                line[len(prefix) :],
                width=width,
                initial_indent=prefix,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


class WebReader:
    """What templates see as `recipient` in the web version: nobody in particular, no personal data at all."""

    def __init__(self, publication: Publication) -> None:
        self.name = publication.greeting_fallback

    def __getattr__(self, name: str) -> str:
        return ""

    def __getitem__(self, name: str) -> str:
        return getattr(self, name)


def web_url(publication: Publication, edition: Edition) -> str:
    """The edition's web version under `site_url` (empty when the publication has no site)."""
    return f"{publication.site_url}/{edition.name}/" if publication.site_url else ""


def render_edition(
    edition: Edition,
    publication: Publication,
    templates: Path | None = None,
    extra_fields: Iterable[str] = (),
    web: bool = False,
) -> RenderedEdition:
    """Render both parts of an edition once, with the theme in `templates` over the packaged one; `extra_fields`
    are the CSV columns templates may use. `web`
    renders the public web version instead: no recipient, a footer that says how to subscribe."""
    fields = BASE_RECIPIENT_FIELDS + tuple(f for f in extra_fields if f not in BASE_RECIPIENT_FIELDS)
    articles = [_article_context(a) for a in edition.articles]
    key = placeholder_key(edition)
    context = {
        "publication": publication,
        "edition": edition,
        "articles": articles,
        "recipient": WebReader(publication) if web else RecipientPlaceholders(fields, key),
        "web": web,
        "web_url": web_url(publication, edition),
    }
    env = template_environment(templates)
    html_part = _render_template(env, HTML_TEMPLATE, context)
    text_part = _render_template(env, TEXT_TEMPLATE, context)
    return RenderedEdition(edition, publication, html_part, _tidy_text(text_part), fields, key)


def _article_context(article: Article) -> dict:
    """What templates see as an article: its fields, and its body as HTML and as text."""
    body_html = markdown_to_html(article.body_markdown)
    context = {field.name: getattr(article, field.name) for field in dataclasses.fields(Article)}
    return {**context, "html": Markup(_mark_data_tables(body_html)), "text": html_to_text(body_html)}


def _mark_data_tables(fragment: str) -> str:
    """Article tables hold data: give them the theme's table style and a role, unlike the layout tables."""
    return fragment.replace("<table>", '<table class="data" role="table">')


def _render_template(env: jinja2.Environment, name: str, context: dict) -> str:
    """Render a template, turning Jinja's errors into one ContentError naming the template file and line."""
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise ContentError(f"template not found: {exc.name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ContentError(f"template syntax error: {exc.message}", exc.filename or name, exc.lineno) from None
    except jinja2.UndefinedError as exc:
        path, line = _template_location(exc, name)
        raise ContentError(f"unknown template variable: {exc.message}", path, line) from None
    except (TypeError, ValueError, AttributeError) as exc:
        path, line = _template_location(exc, name)
        raise ContentError(f"template error: {exc}", path, line) from None


def _template_location(exc: BaseException, default: str) -> tuple[str, int | None]:
    """Jinja rewrites tracebacks to point at template lines: take the innermost template frame."""
    location: tuple[str, int | None] = (default, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith((".html", ".txt")):
            location = (frame.filename, frame.lineno)
    return location


def _tidy_text(text: str) -> str:
    """Collapse runs of blank lines left by template logic; a text email reads best with single gaps."""
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
