"""The real-tool checks: every shipped and test edition passes them, and an edition broken in each way is caught
by the check meant for it. In CI (CI=true) a missing tool is a failure, not a skip."""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from pathlib import Path

import pytest
from conftest import SAMPLE_EDITION

from newsletter.base.workspace import open_workspace
from newsletter.checks.toolchecks import (
    FAILED,
    PASSED,
    SKIPPED,
    WARNING,
    browser_checks,
    client_support_check,
    run_tool_checks,
    spam_check,
    standards_check,
)
from newsletter.edition.compose import MessageFactory
from newsletter.edition.pipeline import placeholder_recipient, preview_edition, render_checked


def usable(check):
    """Skip (locally) or fail (in CI) when the check's tool is missing."""
    if check.status == SKIPPED:
        if os.environ.get("CI"):
            pytest.fail(f"{check.name} skipped in CI: {check.details}")
        pytest.skip(f"{check.name}: {check.details}")
    return check


def by_name(checks, name: str):
    return usable(next(c for c in checks if c.name == name))


@pytest.mark.parametrize("edition", [SAMPLE_EDITION, "spring-clinic", "cafe-news"])
def test_editions_pass_every_tool_check(project: Path, edition: str) -> None:
    preview = preview_edition(edition, open_workspace(project))
    for check in run_tool_checks(preview.html, preview.message.data, project):
        usable(check)
        assert check.status in (PASSED, WARNING), check.line()
        assert check.tool and check.seconds >= 0
        if check.name == "email client support":
            assert check.status == PASSED, check.line()


def test_overflowing_table_is_caught_by_the_layout_check(project: Path) -> None:
    article = project / "issues" / SAMPLE_EDITION / "wide.md"
    cells = " | ".join(["Pneumonoultramicroscopicsilico"] * 2)  # unbreakable words: the table cannot shrink
    article.write_text(f'+++\ntitle = "Wide"\n+++\n\n| {cells} |\n|{"---|" * 2}\n| {cells} |\n', encoding="utf-8")
    toml = project / "issues" / SAMPLE_EDITION / "issue.toml"
    toml.write_text(toml.read_text().replace('articles = ["', 'articles = ["wide.md", "'), encoding="utf-8")
    preview = preview_edition(SAMPLE_EDITION, open_workspace(project))
    layout = by_name(browser_checks(preview.html, project), "responsive layout")
    assert layout.status == FAILED
    assert any(re.match(r"at 375px the page is \d+px wide", d) for d in layout.details), layout.details


def test_missing_alt_is_caught_by_axe(project: Path) -> None:
    html = preview_edition("spring-clinic", open_workspace(project)).html
    broken = re.sub(r'<img src="data:image/png;base64,[^"]*" alt="[^"]*"', '<img src="data:image/png;base64,AA"', html)
    assert broken != html
    access = by_name(browser_checks(broken, project), "accessibility")
    assert access.status == FAILED and any(d.startswith("image-alt") for d in access.details), access.details


def test_low_contrast_brand_colour_is_caught_by_axe(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace('brand_color = "#1f5f8b"', 'brand_color = "#b9d3e6"'))
    html = preview_edition("spring-clinic", open_workspace(project)).html
    access = by_name(browser_checks(html, project), "accessibility")
    assert access.status == FAILED and any(d.startswith("color-contrast") for d in access.details), access.details


def test_low_contrast_in_dark_mode_is_caught_by_the_layout_check(project: Path) -> None:
    html = preview_edition(SAMPLE_EDITION, open_workspace(project)).html
    broken = html.replace(".article, .article h1, .article h2, .article h3 { color: #e6edf3 !important; }",
                          ".article, .article h1, .article h2, .article h3 { color: #30363d !important; }")  # fmt: skip
    assert broken != html
    layout = by_name(browser_checks(broken, project), "responsive layout")
    assert layout.status == FAILED
    assert any(d.startswith("dark mode at 375px, contrast below WCAG AA") for d in layout.details)


def test_view_online_text_part_is_caught_by_spamassassin(project: Path) -> None:
    rendered = render_checked(SAMPLE_EDITION, open_workspace(project))
    lazy = dataclasses.replace(rendered, text="View this email online: https://example.org/archive\n")
    message = MessageFactory(lazy).compose(placeholder_recipient(rendered.publication))
    spam = usable(spam_check(message.data))
    assert spam.status == FAILED and any(d.startswith("MPART_ALT_DIFF") for d in spam.details), spam.details
    good = usable(spam_check(preview_edition(SAMPLE_EDITION, open_workspace(project)).message.data))
    assert good.status == PASSED, good.details


def test_html_errors_beyond_the_allowlist_are_caught_by_vnu(project: Path) -> None:
    html = preview_edition(SAMPLE_EDITION, open_workspace(project)).html
    broken = html.replace('<td class="footer"', '<td class="footer" id="x" id="y"', 1)
    standards = usable(standards_check(broken, project))
    assert standards.status == FAILED
    assert any("Duplicate attribute" in d for d in standards.details), standards.details
    assert usable(standards_check(html, project)).status == PASSED


def test_unsupported_css_is_a_warning_not_a_failure(project: Path) -> None:
    html = preview_edition(SAMPLE_EDITION, open_workspace(project)).html.replace(
        '<p class="copyright"', '<p style="position: absolute"'
    )
    support = usable(client_support_check(html, project))
    assert support.status == WARNING
    assert any("css-position" in d and "outlook windows" in d for d in support.details), support.details


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshot_command_writes_three_pngs(project: Path, cli) -> None:
    usable(browser_checks("<html lang=en><h1>x</h1></html>", project)[0])
    result = cli("screenshot", SAMPLE_EDITION, "--out", "shots")
    assert result.code == 0, result.err
    sizes = {name: png_size(project / "shots" / name) for name in ("desktop.png", "mobile.png", "dark.png")}
    assert sizes["desktop.png"][0] == 1024 and sizes["mobile.png"][0] == 375 and sizes["dark.png"][0] == 375
    assert all(height > 1500 for _, height in sizes.values()), sizes  # the whole email, not one screen


def test_check_command_reports_each_tool(project: Path, cli) -> None:
    result = cli("check", SAMPLE_EDITION)
    for name in ("responsive layout", "accessibility", "spam score", "HTML standards", "email client support"):
        assert re.search(rf"^{name}: (passed|warning|skipped) \(.+, \d+\.\d s\)$", result.out, re.M), result.out
    if os.environ.get("CI"):
        assert "skipped" not in result.out
    assert result.code == 0, result.err


def test_a_crashed_checker_fails_the_check(tmp_path: Path, monkeypatch) -> None:
    """A corrupt vnu.jar makes Java print an error and no report: that is a failed check, not 'no messages'."""
    jar = tmp_path / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"not a jar at all")
    monkeypatch.setenv("NEWSLETTER_NODE_MODULES", str(tmp_path / "node_modules"))
    check = usable(standards_check("<!doctype html><html lang=en><title>x</title></html>", tmp_path))
    assert check.status == FAILED, check.line()
    assert "the Nu checker gave no report" in check.details[0]


def test_a_hanging_checker_fails_the_check(tmp_path: Path, monkeypatch) -> None:
    import newsletter.checks.toolchecks as toolchecks

    fake = tmp_path / "bin" / "spamassassin"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr(toolchecks, "TOOL_TIMEOUT", 1)
    check = spam_check(b"Subject: x\r\n\r\nbody\r\n")
    assert check.status == FAILED and "did not finish within 1 s" in check.details[0], check.line()


def test_the_checkers_are_found_outside_the_source_checkout(project: Path, tmp_path: Path, monkeypatch) -> None:
    """Installed with `newsletter install-checkers` into the per-user cache, they work from any folder; without
    them the skip names that command."""
    import newsletter.checks.tools as tools

    modules = tools.node_modules()
    assert modules is not None, "the checkers of this checkout (scripts/install-test-tools) are needed here"
    monkeypatch.setattr(tools, "SOURCE_CHECKOUT", tmp_path / "not-a-checkout")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    preview = preview_edition(SAMPLE_EDITION, open_workspace(project))
    missing = standards_check(preview.html, project)
    assert missing.status == SKIPPED and "newsletter install-checkers" in missing.details[0]
    cache = tools.checkers_cache()
    cache.mkdir(parents=True)
    (cache / "node_modules").symlink_to(modules)  # what install-checkers leaves there (it needs the network)
    for check in (standards_check(preview.html, project), client_support_check(preview.html, project)):
        assert usable(check).status in (PASSED, WARNING), check.line()


LEAD = (
    '+++\ntitle = "Spring"\nimage = "https://clinic.example/lead.jpg"\nimage_alt = "The clinic garden"\n+++\n\nBody.\n'
)


def test_a_front_matter_image_scales_on_a_phone(project: Path) -> None:
    (project / "issues" / SAMPLE_EDITION / "is-physical-therapy-worth-it-for-back-pain.md").write_text(
        LEAD, encoding="utf-8"
    )
    preview = preview_edition(SAMPLE_EDITION, open_workspace(project))
    layout = by_name(browser_checks(preview.html, project), "responsive layout")
    assert layout.status == PASSED, layout.details


def test_an_overflowing_image_is_named_with_its_article(project: Path) -> None:
    """A theme that gives the lead image a fixed width (as the theme before this fix did): the problem names the
    image and the article file it came from, not just "an image"."""
    article = project / "issues" / SAMPLE_EDITION / "is-physical-therapy-worth-it-for-back-pain.md"
    article.write_text(LEAD, encoding="utf-8")
    theme = project / "templates"
    theme.mkdir()
    html = Path(__file__).parent.parent / "templates" / "email.html"
    fixed = re.sub(r'width="552" style="[^"]*"', 'width="552"', html.read_text(encoding="utf-8"))
    (theme / "email.html").write_text(fixed, encoding="utf-8")
    preview = preview_edition(SAMPLE_EDITION, open_workspace(project))
    origin = lambda src: "is-physical-therapy-worth-it-for-back-pain.md" if "lead" in src else ""  # noqa: E731
    layout = by_name(browser_checks(preview.html, project, origin), "responsive layout")
    assert layout.status == FAILED
    assert ("at 375px the image 'https://clinic.example/lead.jpg' (alt 'The clinic garden') of "
            "is-physical-therapy-worth-it-for-back-pain.md is 552px wide: it overflows") in layout.details  # fmt: skip


def test_install_checkers_survives_npm_output_that_is_not_utf8(tmp_path: Path, monkeypatch, capsys) -> None:
    """npm failing with bytes in another encoding (a Windows code page in a path, say): one line, no traceback."""
    from newsletter.cli import main

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "npm").write_bytes(b"#!/bin/sh\nprintf 'npm ERR! path /home/J\\374rgen\\n' >&2\nexit 1\n")  # latin-1
    (fake / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = main(["install-checkers"])
    err = capsys.readouterr().err
    assert code == 78 and err.startswith("newsletter: npm could not install the checkers") and "J\ufffdrgen" in err
