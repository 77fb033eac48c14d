"""Stage 4, verify: the checks no edition may go out without passing, whichever template or article caused it.

They run on what subscribers will get (the inlined HTML as visible text, and the text part), not on the sources,
so a theme override that drops the footer is caught as surely as an article that breaks the layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from ..base.addresses import parse_mailbox
from ..base.errors import HeaderInjectionError
from ..base.headers import check_header_value
from ..base.model import Edition, Publication, RenderedEdition
from .placeholders import is_placeholder, placeholder

GMAIL_CLIP_BYTES = 102 * 1024
MAX_HTML_BYTES = 100 * 1024
MAX_TEXT_LINE = 78
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.I)
_URL = re.compile(r"(https?://|mailto:)\S+")


@dataclass
class HtmlFacts:
    """What the checks need to know about an HTML document, gathered in one pass."""

    visible_text: list[str] = field(default_factory=list)
    images_without_alt: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)
    tables_without_role: int = 0
    has_lang: bool = False
    not_absolute: list[str] = field(default_factory=list)  # links and images a mail reader cannot resolve


class _FactFinder(HTMLParser):
    """One pass over the document: visible text (skipping head, style, script and hidden elements) and facts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts = HtmlFacts()
        self._stack: list[bool] = []  # per open element: is it hiding its content?

    def _hidden(self) -> bool:
        return any(self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self._facts_of(tag, values)
        if tag in _VOID:
            return
        hides = (
            tag in {"head", "style", "script", "title", "template"}
            or values.get("aria-hidden") == "true"
            or bool(_HIDDEN_STYLE.search(values.get("style", "")))
            or "hidden" in values
        )
        self._stack.append(hides)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID and self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.facts.visible_text.append(data)

    def _facts_of(self, tag: str, values: dict[str, str]) -> None:
        if tag == "html" and values.get("lang"):
            self.facts.has_lang = True
        if tag == "img" and not values.get("alt", "").strip():  # an email image may not load: say what it shows
            self.facts.images_without_alt.append(values.get("src", "?"))
        if tag == "table" and not values.get("role"):
            self.facts.tables_without_role += 1
        if tag in {"script", "iframe", "object", "embed", "form"}:
            self.facts.unsafe.append(f"<{tag}> element")
        for name, value in values.items():
            if name.startswith("on"):
                self.facts.unsafe.append(f"event handler {name} on <{tag}>")
            if name in {"href", "src", "action"} and value.strip().lower().startswith(("javascript:", "vbscript:")):
                self.facts.unsafe.append(f"{value.split(':')[0]}: URL in <{tag} {name}>")
            elif (tag, name) in {("a", "href"), ("img", "src")} and not _absolute(value, tag):
                self.facts.not_absolute.append(f"<{tag} {name}={value!r}>")


_ABSOLUTE = ("https://", "http://", "mailto:")


def _absolute(url: str, tag: str) -> bool:
    """An email has no base URL: `/book` or `page.html` lead nowhere. Images may also be inline data: URIs;
    recipient placeholders become absolute URLs when each message is composed."""
    url = url.strip()
    return url.lower().startswith(_ABSOLUTE) or is_placeholder(url) or (tag == "img" and url.startswith("data:"))


def html_facts(html: str) -> HtmlFacts:
    finder = _FactFinder()
    finder.feed(html)
    finder.close()
    return finder.facts


def normalise(text: str) -> str:
    """Fold white space (including NBSP) and case so wrapped or reflowed text still matches."""
    return " ".join(text.replace("\u00a0", " ").split()).casefold()


def check_rendered(rendered: RenderedEdition) -> list[str]:
    """Every problem with a rendered, inlined edition, one line each; an empty list means it may go out."""
    facts = html_facts(rendered.html)
    visible_html = normalise(" ".join(facts.visible_text))
    text = normalise(rendered.text)
    publication = rendered.publication
    problems = _header_problems(rendered)
    titles = {f"title of {a.path.name}": a.title for a in rendered.edition.articles}
    problems += footer_problems(visible_html, text, publication, titles)
    unsubscribe = placeholder(rendered.recipient_fields.index("unsubscribe_url"), rendered.placeholder_key)
    for part, content in (("HTML part", rendered.html), ("text part", rendered.text)):
        if unsubscribe not in content:
            problems.append(f"{part} lacks the unsubscribe link (recipient.unsubscribe_url)")
    size = len(rendered.html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        problems.append(
            f"HTML part is {size / 1024:.0f} KB; Gmail clips messages over about {GMAIL_CLIP_BYTES // 1024} KB and "
            f"hides the footer and disclaimer: keep it under {MAX_HTML_BYTES // 1024} KB (shorten or split articles)"
        )
    for src in facts.images_without_alt:
        source = image_origin(rendered.edition, src)
        problems.append((f"{source}: " if source else "") + f"image without alt text: {src}")
    return problems + markup_problems(facts) + text_line_problems(rendered.text)


def markup_problems(facts: HtmlFacts) -> list[str]:
    """What any mail's HTML must not have, whatever it says: unsafe markup, links and images that lead
    nowhere in an email, no language, layout tables without a role."""
    problems = [f"unsafe HTML: {what}" for what in facts.unsafe]
    problems += [f"link or image that is not an absolute http(s)/mailto URL (it leads nowhere in an email): {what}"
                 for what in facts.not_absolute]  # fmt: skip
    if not facts.has_lang:
        problems.append("HTML part has no lang attribute on <html>")
    if facts.tables_without_role:
        problems.append(f'{facts.tables_without_role} table(s) without a role (use role="presentation" for layout)')
    return problems


def footer_problems(visible_html: str, text: str, publication: Publication, more: dict[str, str] = {}) -> list[str]:  # noqa: B006
    """What both parts of any mail must show (normalised text in): the disclaimer, the copyright line and the
    postal address, and `more` (what: value)."""
    required = {"disclaimer": publication.disclaimer, "copyright line": publication.copyright,
                "postal address": publication.postal_address, **more}  # fmt: skip
    return [f"{part} lacks the {what}: {value[:60]!r}" for what, value in required.items()
            for part, content in (("HTML part", visible_html), ("text part", text))
            if normalise(value) not in content]  # fmt: skip


def image_origin(edition: Edition, src: str) -> str:
    """The file name of the article an image (by its src) came from: its front-matter image, or its body."""
    for article in edition.articles:
        if src and (article.image == src or src in article.body_markdown):
            return article.path.name
    return ""


PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")


def publication_problems(publication: Publication) -> list[str]:
    """What `check` refuses in the settings themselves: a From address at a documentation domain (RFC 2606:
    mail from it fails DMARC, and it was never this publication's) and no postal address in the footer (the
    law asks bulk senders for one: CAN-SPAM, and Gmail's and Yahoo's sender rules)."""
    problems = []
    domain = parse_mailbox(publication.sender, "[publication] from").domain.lower()
    if any(domain == d or domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS):
        problems.append(
            f"[publication] from is at {domain}, a placeholder domain: set it (or NEWSLETTER_FROM) to an address "
            "at your own domain"
        )
    if not publication.postal_address.strip():
        problems.append("[publication] postal_address is missing: every edition's footer must show one")
    return problems


def _header_problems(rendered: RenderedEdition) -> list[str]:
    """Values bound for headers (the subject; titles, which users copy into subjects) must not inject lines."""
    values = [("subject", rendered.edition.subject, rendered.edition.folder / "issue.toml")]
    values += [("title", a.title, a.path) for a in rendered.edition.articles]
    problems = []
    for what, value, path in values:
        try:
            check_header_value(what, value, path)
        except HeaderInjectionError as error:  # the CLI names the edition folder; name the file within it
            problems.append(f"{path.name}: {error.message}")
    return problems


def text_line_problems(text: str) -> list[str]:
    """Text lines over 78 characters wrap badly in mail readers; lines carrying a URL are allowed."""
    return [
        f"text part line {number} is {len(line)} characters (at most {MAX_TEXT_LINE}): {line[:40]!r}..."
        for number, line in enumerate(text.splitlines(), start=1)
        if len(line) > MAX_TEXT_LINE and not _URL.search(line)
    ]
