"""Import: the seed article and saved HTML pages come through paragraph for paragraph, chrome and footer dropped."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import DATA, SAMPLE_ARTICLE, SAMPLE_EDITION

from newsletter.base.config import load_publication
from newsletter.base.workspace import open_workspace
from newsletter.edition.importer import escape_markdown, import_article, parse_source, slugify
from newsletter.edition.load import load_edition, split_front_matter
from newsletter.edition.verify import normalise

SAMPLE_TXT = DATA / "samples" / "seattle-neuro-back-pain.txt"  # the seed article, as the clinic's site saved it


def sample_paragraphs() -> list[str]:
    text = SAMPLE_TXT.read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def test_shipped_edition_is_the_imported_sample(project: Path) -> None:
    """issues/back-pain is exactly what `import` makes of the sample today."""
    target = import_article(SAMPLE_TXT, open_workspace(project), into="fresh").path
    assert target.read_text(encoding="utf-8") == SAMPLE_ARTICLE.read_text(encoding="utf-8")


def test_sample_import_keeps_every_paragraph_and_drops_chrome(project: Path) -> None:
    article = parse_source(SAMPLE_TXT, load_publication(project))
    assert article.title == "Is Physical Therapy Worth It for Back Pain?"
    body = normalise(article.body_markdown)
    paragraphs = sample_paragraphs()
    assert len(paragraphs) > 10
    site, _title, *rest = paragraphs
    disclaimer, copyright_line, chrome = rest[-3:]
    for paragraph in rest[:-3]:
        assert normalise(paragraph) in body
    for dropped in (site, disclaimer, copyright_line, chrome):
        assert normalise(dropped) not in body
    assert "go to top" not in body


def test_import_creates_edition_with_subject_from_title(project: Path, cli) -> None:
    result = cli("import", DATA / "imports" / "bullets.txt", "--into", "issues/headaches")
    assert result.code == 0, result.err
    edition = tomllib.loads((project / "issues/headaches/issue.toml").read_text(encoding="utf-8"))
    assert edition["subject"] == "When to see a neurologist about headaches"
    article = (project / "issues/headaches" / edition["articles"][0]).read_text(encoding="utf-8")
    meta, body, _ = split_front_matter(article, Path("x.md"))
    assert meta == {"title": "When to see a neurologist about headaches"}
    assert "- a sudden, severe headache unlike any before\n- headache with fever" in body
    assert "we'd rather see you early" in body
    assert "VoxMD" not in body and "emergency help" not in body and "Go to Top" not in body
    assert cli("check", "headaches").code == 0


def test_import_into_existing_edition_appends_to_its_list(project: Path) -> None:
    target = import_article(DATA / "imports" / "post.html", open_workspace(project), into=SAMPLE_EDITION).path
    edition = load_edition(SAMPLE_EDITION, project)
    assert [a.path.name for a in edition.articles] == [SAMPLE_ARTICLE.name, target.name]


def test_html_import_keeps_article_body_only(project: Path) -> None:
    article = parse_source(DATA / "imports" / "post.html", load_publication(project))
    assert article.title == "Posture at work: small changes, big relief"
    assert article.canonical_url == "https://example.org/blog/posture-at-work"
    assert article.author == "Dr. Renée Okafor"
    assert str(article.date) == "2026-02-01"
    assert "Stand up every 30 minutes." in article.body_markdown
    assert "- Screen at eye level" in article.body_markdown
    assert "[desk set-up guide](https://example.org/guides/desk)" in article.body_markdown
    for dropped in ("trackEverything", "alert", "color: red", "Related posts", "Home", "Go to Top", "VoxMD",
                    "emergency help", "Seattle Neuro Blog"):  # fmt: skip
        assert dropped not in article.body_markdown, dropped


def test_markdown_import_reads_heading_as_title(tmp_path: Path, project: Path) -> None:
    source = tmp_path / "note.md"
    source.write_text("# Hello — world\n\nBody text.\n", encoding="utf-8")
    article = parse_source(source, load_publication(project))
    assert (article.title, article.body_markdown) == ("Hello — world", "Body text.")


def test_escape_markdown_keeps_prose_prose() -> None:
    assert (
        escape_markdown("1. Not a list, *not* bold, [not](a link)") == r"1\. Not a list, \*not\* bold, \[not\](a link)"
    )
    assert slugify("Is Physical Therapy Worth It?") == "is-physical-therapy-worth-it"
    assert slugify("¿¡!?") == "article"


def test_a_list_right_after_its_lead_in_line_stays_a_list(tmp_path: Path, project: Path) -> None:
    source = tmp_path / "post.txt"
    source.write_text(
        "Headaches and your neck\n\nSee a doctor when it comes with any of these.\nWarning signs:\n"
        "    • numbness\n    • fever\n\nOtherwise, rest.\n",
        encoding="utf-8",
    )
    article = parse_source(source, load_publication(project))
    assert article.body_markdown == (
        "See a doctor when it comes with any of these. Warning signs:\n\n- numbness\n- fever\n\nOtherwise, rest."
    )


def test_markdown_import_keeps_every_front_matter_field(tmp_path: Path, project: Path, cli) -> None:
    source = tmp_path / "note.md"
    source.write_text(
        '+++\ntitle = "Sleep and pain"\nauthor = "Dr. A"\ndate = 2026-03-04\nsummary = "Why sleep matters."\n'
        'canonical_url = "https://example.org/sleep"\nimage = "https://example.org/sleep.jpg"\n'
        'image_alt = "A person asleep"\n+++\n\nBody text.\n',
        encoding="utf-8",
    )
    assert cli("import", source, "--into", "sleep").code == 0
    (article,) = load_edition("sleep", project).articles
    assert (article.title, article.author, str(article.date), article.summary, article.canonical_url,
            article.image, article.image_alt) == ("Sleep and pain", "Dr. A", "2026-03-04", "Why sleep matters.",
                                                  "https://example.org/sleep", "https://example.org/sleep.jpg",
                                                  "A person asleep")  # fmt: skip


def test_non_latin_titles_get_distinct_readable_names(tmp_path: Path, project: Path, cli) -> None:
    for name, title in (("a.txt", "Боль в спине"), ("b.txt", "Боль в шее"), ("c.txt", "腰痛について")):
        (tmp_path / name).write_text(f"{title}\n\nA paragraph about it.\n", encoding="utf-8")
        assert cli("import", tmp_path / name, "--into", "mixed").code == 0
    names = sorted(p.name for p in (project / "issues" / "mixed").glob("*.md"))
    assert names == ["боль-в-спине.md", "боль-в-шее.md", "腰痛について.md"]
    assert slugify("Боль в спине") == "боль-в-спине"
    assert cli("import", tmp_path / "a.txt").code == 0
    assert cli("build", "боль-в-спине").code == 0, "an edition import names can be built by that name"


def test_import_into_follows_the_one_name_rule(project: Path, cli) -> None:
    for into in ("a/../..", "My Edition", "issues/../../x"):
        result = cli("import", DATA / "imports" / "bullets.txt", "--into", into)
        assert result.code == 1 and "Traceback" not in result.err, into
    assert not (project / "My Edition").exists() and not (project / "issues" / "My Edition").exists()
    assert not (project.parent / "x").exists()


def test_a_wordpress_page_imports_as_its_article_alone(project: Path, cli) -> None:
    """Share buttons, related posts, the author box, a booking button, comments and the sign-up widget stay out;
    the byline's author and the date come in; relative links and images become absolute; a figure's caption
    becomes its image's alt text, so the imported edition passes every check."""
    result = cli("import", DATA / "imports" / "wordpress.html", "--into", "cluster")
    assert result.code == 0, result.err
    assert "warning" not in result.err
    (article,) = load_edition("cluster", project).articles
    assert (article.title, article.author, str(article.date), article.canonical_url) == (
        "Cluster headaches: what helps", "Dr. Maya Lindqvist", "2026-04-02",
        "https://example.org/blog/cluster-headaches/")  # fmt: skip
    body = article.body_markdown
    assert "Cluster headaches are among the most painful conditions" in body
    assert "[book an appointment](https://example.org/book)" in body
    assert "[cluster triggers](https://example.org/blog/cluster)" in body
    assert ("![Where a cluster headache usually strikes]"
            "(https://example.org/wp-content/uploads/2026/04/cluster.jpg)") in body  # fmt: skip
    assert "- a red, watery eye on the same side" in body
    for dropped in ("Share this", "Twitter", "Facebook", "Related", "Migraine or tension", "About Dr.",
                    "fifteen years", "thoughts on", "helped me so much", "Leave a Reply", "Sign up",
                    "emergency help", "VoxMD", "Tagged"):  # fmt: skip
        assert dropped not in body, dropped
    assert cli("check", "cluster", "--quick").code == 0


def test_html_import_names_images_without_alt_text(project: Path, cli, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<html><head><title>Neck pain</title><link rel="canonical" href="https://example.org/neck"></head><body>'
        "<article><h1>Neck pain</h1><p>Most neck pain gets better within weeks with gentle movement and time.</p>"
        '<p><img src="/img/neck.jpg"></p><p>See a doctor when it spreads to your arms or comes with fever.</p>'
        "</article></body></html>",
        encoding="utf-8",
    )
    result = cli("import", page, "--into", "neck")
    assert result.code == 0
    assert ("newsletter: warning: image https://example.org/img/neck.jpg has no alt text, which the build requires: "
            "describe what it shows between the brackets of ![](https://example.org/img/neck.jpg) in neck-pain.md"
            ) in result.err  # fmt: skip
    check = cli("check", "neck", "--quick")
    assert check.code == 1 and "image without alt text: https://example.org/img/neck.jpg" in check.err


@pytest.mark.parametrize(
    ("byline", "author", "date"),
    [
        ("Posted January 3, 2026 by Mara Lindqvist", "Mara Lindqvist", "2026-01-03"),
        ("By Mara Lindqvist · 3 Jan 2026", "Mara Lindqvist", "2026-01-03"),
        ("Published on 2026-01-03", "", "2026-01-03"),
        ("by Dr. Renée Okafor", "Dr. Renée Okafor", "None"),
    ],
)
def test_a_text_post_keeps_its_title_above_the_byline(tmp_path: Path, project: Path, byline, author, date) -> None:
    for header in ("", "Seattle Neuro Blog\n\n"):  # with and without the site's name above the title
        post = tmp_path / "post.txt"
        post.write_text(f"{header}Winter walks for a stiff back\n\n{byline}\n\nWalk a little every day.\n\n"
                        "Dress warmly, and keep your steps short on ice.\n", encoding="utf-8")  # fmt: skip
        article = parse_source(post, load_publication(project))
        assert (article.title, article.author, str(article.date)) == ("Winter walks for a stiff back", author, date)
        assert article.body_markdown.startswith("Walk a little every day.") and byline not in article.body_markdown


def test_an_html_post_keeps_its_featured_image(project: Path, cli, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<html><head><title>Neck pain</title><link rel="canonical" href="https://example.org/blog/neck">'
        '<meta property="og:image" content="https://example.org/og.jpg"></head><body>'
        '<div class="post-thumbnail"><img width="1200" height="600" src="/uploads/neck.jpg" '
        'class="attachment-post-thumbnail size-post-thumbnail wp-post-image" alt="A woman stretching her neck">'
        "</div><article><h1>Neck pain</h1><p>Most neck pain gets better within weeks with gentle movement.</p>"
        "<p>See a doctor when it spreads to your arms or comes with fever.</p></article></body></html>",
        encoding="utf-8",
    )
    assert cli("import", page, "--into", "neck").code == 0
    (article,) = load_edition("neck", project).articles
    assert (article.image, article.image_alt) == ("https://example.org/uploads/neck.jpg", "A woman stretching her neck")
    assert cli("check", "neck", "--quick").code == 0
