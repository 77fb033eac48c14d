"""Stage 1, load: an edition folder on disk -> an `Edition` value.

An edition is `issues/<name>/issue.toml` plus Markdown articles whose front matter is TOML between `+++` lines
(Hugo's convention, read with the standard library's tomllib so no YAML dependency is needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tomllib
from pathlib import Path

from ..base.dates import parse_date
from ..base.errors import ContentError
from ..base.files import read_text
from ..base.model import Article, Edition
from ..base.workspace import ISSUES_DIR

EDITION_FILE = "issue.toml"
FRONT_MATTER_FENCE = "+++"
# the front matter's keys: an Article's fields but the file's own path and its body
FRONT_MATTER_KEYS = [field.name for field in dataclasses.fields(Article) if field.name not in ("path", "body_markdown")]
_EDITION_KEYS = {"subject", "preheader", "date", "articles"}
# Letters (any script) and digits, then also '.', '_' and '-': one rule for `build NAME`, `import --into NAME`
# and the folders `import` creates, so every edition import makes can be built by name.
_EDITION_NAME = re.compile(r"^[^\W_][\w.-]*$")
NAME_RULE = "edition names are letters, digits, '.', '_' and '-', starting with a letter or digit"


def check_edition_name(name: str, where: str | Path | None = None) -> str:
    """Return `name`, or raise ContentError when it is not a valid edition name."""
    if not _EDITION_NAME.match(name) or len(name) > 100:
        raise ContentError(NAME_RULE, where if where is not None else name)
    return name


def parse_toml(text: str, path: Path, line_offset: int = 0) -> dict:
    """Parse TOML, reporting the file and line of a syntax error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match[1]) if match else len(text.rstrip("\n").split("\n"))  # "at end of document"
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        line += line_offset
        raise ContentError(f"malformed TOML: {message}", path, line) from None


def toml_string(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML), for the files `import` and `init` write."""
    return json.dumps(value, ensure_ascii=False)


def edition_folder(edition: str | Path, root: Path) -> Path:
    """Resolve EDITION as given on the command line: a folder path, or a name under issues/."""
    candidate = Path(edition)
    if candidate.is_dir() or len(candidate.parts) > 1:
        folder = candidate if candidate.is_absolute() else root / candidate
    else:
        folder = root / ISSUES_DIR / check_edition_name(str(edition))
    if not (folder / EDITION_FILE).is_file():
        if not folder.is_dir():
            raise ContentError("no such edition (expected a folder with issue.toml)", folder)
        raise ContentError(f"missing {EDITION_FILE}", folder)
    return folder


def load_edition(edition: str | Path, root: Path) -> Edition:
    """Load an edition and every article it lists, checking each field on the way."""
    folder = edition_folder(edition, root)
    path = folder / EDITION_FILE
    data = parse_toml(read_text(path), path)
    _reject_unknown_keys(data, _EDITION_KEYS, path)
    subject = _string(data, "subject", path, required=True)
    article_paths = _article_paths(data, folder, path)
    articles = tuple(load_article(p) for p in article_paths)
    preheader = _string(data, "preheader", path) or articles[0].summary or _first_sentence(articles[0])
    return Edition(
        name=folder.name,
        folder=folder,
        subject=subject,
        preheader=preheader,
        date=_date(data, path) or dt.date.today(),
        articles=articles,
    )


def load_article(path: Path) -> Article:
    """Load one Markdown article; front matter needs at least a title, the body at least one line."""
    text = read_text(path)
    meta, body, _ = split_front_matter(text, path)
    _reject_unknown_keys(meta, set(FRONT_MATTER_KEYS), path)
    if not body.strip():
        raise ContentError("article is empty (no text after the front matter)", path)
    image = _string(meta, "image", path)
    image_alt = _string(meta, "image_alt", path)
    if image and not image_alt:
        raise ContentError("image needs image_alt (alt text for readers who cannot see it)", path)
    canonical = _string(meta, "canonical_url", path)
    if canonical and not canonical.startswith(("https://", "http://")):
        raise ContentError("canonical_url must be an http(s) URL", path)
    return Article(
        path=path,
        title=_string(meta, "title", path, required=True),
        body_markdown=body,
        author=_string(meta, "author", path),
        date=_date(meta, path),
        summary=_string(meta, "summary", path),
        canonical_url=canonical,
        image=image,
        image_alt=image_alt,
    )


def split_front_matter(text: str, path: Path) -> tuple[dict, str, bool]:
    """Split `+++` TOML front matter from the Markdown body; returns (meta, body, had_front_matter)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        return {}, text, False
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == FRONT_MATTER_FENCE:
            meta = parse_toml("\n".join(lines[1:index]), path, line_offset=1)
            return meta, "\n".join(lines[index + 1 :]), True
    raise ContentError(f"front matter opened with {FRONT_MATTER_FENCE} on line 1 is never closed", path, 1)


def _article_paths(data: dict, folder: Path, path: Path) -> list[Path]:
    """The listed articles in order, or every *.md in the folder by name when `articles` is absent."""
    listed = data.get("articles")
    if listed is None:
        names = sorted(p.name for p in folder.glob("*.md"))
        if not names:
            raise ContentError("edition has no articles (no *.md files and no 'articles' list)", path)
    elif not isinstance(listed, list) or not listed or not all(isinstance(x, str) for x in listed):
        raise ContentError("'articles' must be a non-empty list of file names", path)
    else:
        names = listed
    return [_inside(folder, name, path) for name in names]


def _inside(folder: Path, name: str, path: Path) -> Path:
    """The article file, refused when it (or a link it is) leads outside the edition folder."""
    article = (folder / name).resolve()
    if not article.is_relative_to(folder.resolve()):
        raise ContentError(f"article {name!r} is outside the edition folder (a link or '..')", path)
    return article


def _string(data: dict, key: str, path: Path, required: bool = False) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ContentError(f"'{key}' must be a string", path)
    if required and not value.strip():
        raise ContentError(f"'{key}' is required", path)
    return value.strip()


def _date(data: dict, path: Path) -> dt.date | None:
    value = data.get("date")
    if value is None:
        return None
    date = parse_date(value)
    if date is None or (isinstance(value, str) and len(value.strip()) != 10):  # a written date is ISO, nothing else
        raise ContentError(f"'date' must be a date like 2026-11-26, got {value!r}", path)
    return date


def _reject_unknown_keys(data: dict, allowed: set[str], path: Path) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ContentError(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})", path)


def _first_sentence(article: Article) -> str:
    """A preheader fallback: the start of the first paragraph, as inboxes show about 90 characters."""
    first = next((p for p in article.body_markdown.split("\n\n") if p.strip()), "")
    plain = re.sub(r"[*_`#>\[\]]|\(https?://[^)]*\)", "", first).strip()
    return plain[:140].rsplit(" ", 1)[0] if len(plain) > 140 else plain
