"""Render and inline: faithful content, safe HTML, the responsive theme intact after premailer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SAMPLE_ARTICLE, SAMPLE_EDITION

from newsletter.base.errors import CheckFailed, ContentError
from newsletter.base.model import Recipient
from newsletter.base.workspace import open_workspace
from newsletter.edition.compose import MessageFactory
from newsletter.edition.load import split_front_matter
from newsletter.edition.pipeline import render_checked
from newsletter.edition.render import markdown_to_html
from newsletter.edition.verify import html_facts, normalise


def visible(html: str) -> str:
    return normalise(" ".join(html_facts(html).visible_text))


def test_sample_renders_every_paragraph_title_and_disclaimer(project: Path) -> None:
    rendered = render_checked(SAMPLE_EDITION, open_workspace(project))
    _, body, _ = split_front_matter(SAMPLE_ARTICLE.read_text(encoding="utf-8"), SAMPLE_ARTICLE)
    paragraphs = [p for p in body.split("\n\n") if p.strip()]
    assert len(paragraphs) == 7
    html_text, text = visible(rendered.html), normalise(rendered.text)
    for paragraph in paragraphs:
        assert normalise(paragraph) in html_text
        assert normalise(paragraph) in text
    for required in ("Is Physical Therapy Worth It for Back Pain?", rendered.publication.disclaimer,
                     rendered.publication.copyright, rendered.publication.postal_address):  # fmt: skip
        assert normalise(required) in html_text
        assert normalise(required) in text
    assert html_text.count(normalise(rendered.publication.disclaimer)) == 1


def test_inlined_html_keeps_media_queries_important_and_mso_comments(project: Path) -> None:
    html = render_checked(SAMPLE_EDITION, open_workspace(project)).html
    head = html.split("</head>")[0]
    assert "@media only screen and (max-width: 620px)" in head
    assert "@media (prefers-color-scheme: dark)" in head
    assert "max-width: 100% !important" in head
    assert "a[x-apple-data-detectors]" in head and "#outlook a" in head
    assert "data-premailer" not in html
    assert "<!--[if mso]>" in html and "<![endif]-->" in html
    assert re.search(r'<td class="article"[^>]*style=[\'"][^>]*font-size:\s*17px', html)
    assert head.count("<style") == 2  # the MSO-only one and the kept one; the inlined sheet is gone


def test_layout_is_accessible_and_preheader_hidden(project: Path) -> None:
    html = render_checked("spring-clinic", open_workspace(project)).html
    assert re.search(r'<html lang="en"', html)
    facts = html_facts(html)
    assert facts.tables_without_role == 0 and not facts.images_without_alt
    assert 'role="presentation"' in html
    preheader = "Three stretches for desk workers, our new Saturday hours"
    assert preheader in html and normalise(preheader) not in visible(html)
    assert 'alt="A physical therapist guiding a patient through a seated stretch"' in html
    assert 'href="https://example.org/blog/three-stretches"' in html


def test_text_part_reads_like_a_hand_written_email(project: Path) -> None:
    rendered = render_checked("spring-clinic", open_workspace(project))
    text = rendered.text
    assert "XNLF" in text  # recipient fields still placeholders at this stage
    for line in text.splitlines():
        assert len(line) <= 78 or "http" in line, line
    assert "|" not in text and "##" not in text, "no Markdown table pipes or heading marks in a text email"
    lines = text.splitlines()
    start = lines.index("Stretch       Time   Repeats")
    assert lines[start : start + 5] == ["Stretch       Time   Repeats", "------------  -----  ----------",
                                        "Cat–cow       1 min  10", "Seated twist  40 s   2 per side",
                                        "Hip flexor    1 min  2 per side"]  # fmt: skip
    assert "&zwnj;" not in text and "\u034f" not in text and "\u200c" not in text
    assert "[guide to posture][1]" in text
    assert "[1]: <https://example.org/guides/posture?utm_source=newsletter&utm_medium=email>" in text
    assert "Three stretches for desk workers — no equipment needed" in text
    assert "Façade works on" in text and "🙂" in text
    assert "1. Cat–cow: on hands and knees" in text


def test_raw_html_and_javascript_links_never_reach_the_output(project: Path) -> None:
    html = render_checked("spring-clinic", open_workspace(project)).html
    assert "<script" not in html.lower()
    assert "javascript:" not in html.replace("[a bad link](javascript:alert(1))", "")
    assert not html_facts(html).unsafe
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("markdown", "forbidden"),
    [
        ("<img src=x onerror=alert(1)>", "<img src=x"),
        ("[x](javascript:alert(1))", 'href="javascript'),
        ("[x](JaVaScRiPt:alert(1))", 'href="JaVaScRiPt'),
        ("<a href='javascript:x'>y</a>", "<a href='javascript"),
        ("![x](vbscript:msgbox)", 'src="vbscript'),
        ('<div onclick="steal()">hi</div>', "<div onclick"),
    ],
)
def test_markdown_escapes_raw_html_and_drops_script_urls(markdown: str, forbidden: str) -> None:
    assert forbidden not in markdown_to_html(markdown)


def test_title_is_autoescaped(project: Path) -> None:
    article = next((project / "issues" / SAMPLE_EDITION).glob("*.md"))
    text = article.read_text(encoding="utf-8")
    article.write_text(text.replace('title = "Is', 'title = "<b>Bold</b> & Is', 1), encoding="utf-8")
    html = render_checked(SAMPLE_EDITION, open_workspace(project)).html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Is" in html and "<b>Bold</b>" not in html


def test_working_directory_templates_override_the_theme(project: Path) -> None:
    (project / "templates").mkdir()
    theme = (Path(__file__).parents[1] / "templates" / "email.html").read_text(encoding="utf-8")
    (project / "templates" / "email.html").write_text(theme.replace("Unsubscribe</a>", "Leave the list</a>"))
    html = render_checked(SAMPLE_EDITION, open_workspace(project)).html
    assert "Leave the list" in html


def test_unknown_template_variable_names_template_and_line(project: Path) -> None:
    (project / "templates").mkdir()
    (project / "templates" / "email.html").write_text("<html lang=en>\n<p>{{ publication.nmae }}</p>\n")
    with pytest.raises(ContentError) as caught:
        render_checked(SAMPLE_EDITION, open_workspace(project))
    assert "unknown template variable" in str(caught.value)
    assert str(caught.value).startswith(str(project / "templates" / "email.html") + ":2:")


def test_text_tables_wrap_within_their_columns_and_headings_are_underlined() -> None:
    from newsletter.edition.render import html_to_text, markdown_to_html

    long = "Walking in the park with a friend at an easy pace, then a longer cool-down stretch at home"
    text = html_to_text(markdown_to_html(
        f"## Weekly plan\n\n| Day | Activity | Minutes |\n|---|---|---|\n| Monday | {long} | 30 |\n\n### Notes\n\nRest."
    ))  # fmt: skip
    lines = text.splitlines()
    assert lines[:2] == ["Weekly plan", "-----------"]
    assert "Notes" in lines and lines[lines.index("Notes") + 1] == "-----"
    table = lines[3:7]
    assert table[0].split() == ["Day", "Activity", "Minutes"]
    assert table[2].startswith("Monday  Walking in the park") and table[2].endswith("30")
    assert table[3].startswith(" " * 8) and "home" in table[3], "the long cell wraps within its column"
    assert all(len(line) <= 72 for line in lines)


def test_images_are_marked_in_the_text_part(project: Path) -> None:
    article = project / "issues" / "spring-clinic" / "01-stretches.md"
    article.write_text(article.read_text(encoding="utf-8") + "\n![A cat stretching](https://clinic.example/cat.jpg)\n",
                       encoding="utf-8")  # fmt: skip
    text = " ".join(render_checked("spring-clinic", open_workspace(project)).text.split())
    assert "[Image: A physical therapist guiding a patient through a seated stretch]" in text  # the front matter's
    assert "[Image: A cat stretching]" in text


def test_an_image_without_alt_text_names_its_article(project: Path) -> None:
    article = project / "issues" / "spring-clinic" / "02-hours.md"
    article.write_text(article.read_text(encoding="utf-8") + "\n![](https://clinic.example/map.png)\n", "utf-8")
    with pytest.raises(CheckFailed) as failed:
        render_checked("spring-clinic", open_workspace(project))
    assert "02-hours.md: image without alt text: https://clinic.example/map.png" in failed.value.problems


def test_templates_get_a_first_name(project: Path) -> None:
    theme = project / "templates"
    theme.mkdir()
    text = (Path(__file__).parent.parent / "templates" / "email.txt").read_text(encoding="utf-8")
    (theme / "email.txt").write_text(text.replace("Hi {{ recipient.name }},", "Hi {{ recipient.first_name }},"))
    factory = MessageFactory(render_checked(SAMPLE_EDITION, open_workspace(project), ("first_name",)))
    assert "Hi Ann," in factory.personalise(Recipient("a@example.org", "Ann Example"))[0]
    assert "Hi Nan," in factory.personalise(Recipient("b@example.org", "Ann Example", {"first_name": "Nan"}))[0]
    assert "Hi there," in factory.personalise(Recipient("c@example.org", ""))[0]
