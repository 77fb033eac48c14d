"""The review page: written by build beside email.html, served live by preview, rebuilt on every change."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from conftest import SAMPLE_EDITION

from newsletter.base.workspace import open_workspace
from newsletter.checks.preview import PreviewServer
from newsletter.checks.review import ReviewData, forced_dark, review_page


def test_build_writes_a_self_contained_review_page(project: Path, cli) -> None:
    assert cli("build", SAMPLE_EDITION).code == 0
    page = (project / "build" / SAMPLE_EDITION / "review.html").read_text(encoding="utf-8")
    assert "<title>Review: Is Physical Therapy Worth It for Back Pain?</title>" in page
    for label in ("Desktop", "Phone, 375 px", "Desktop, dark mode", "Phone, dark mode"):
        assert f"<figcaption>{label}</figcaption>" in page
    assert page.count("<iframe sandbox") == 4
    assert "<th>From</th><td>Seattle Neuro Blog &lt;newsletter@seattle-neuro.example&gt;</td>" in page
    assert "<th>List-Unsubscribe</th>" in page
    assert "<th>Preheader</th><td>Back pain is one of the most common health complaints worldwide" in page
    assert "KB</strong> of Gmail's ~102 KB clip (fits)" in page
    assert "built-in checks (disclaimer" in page and "passed" in page
    assert "`newsletter check`" in page
    assert "All information provided on this website" in page  # the text part, shown as text
    assert "fetch('/version'" not in page  # the static page does not try to reload


def test_dark_panes_apply_the_dark_rules_unconditionally() -> None:
    html = "<style>@media (prefers-color-scheme: dark) { body { color: #fff !important; } }</style>"
    assert forced_dark(html) == "<style>@media all { body { color: #fff !important; } }</style>"


def test_review_page_escapes_what_it_shows() -> None:
    page = review_page(ReviewData("<script>x</script>", html="<p>hi</p>", text="<b>t</b>"))
    assert "<script>x</script>" not in page.split("<body>")[1]
    assert "&lt;script&gt;" in page and "&lt;b&gt;t&lt;/b&gt;" in page


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8")


def test_preview_serves_on_loopback_and_rebuilds_on_change(project: Path) -> None:
    server = PreviewServer(SAMPLE_EDITION, lambda: open_workspace(project), port=0, tools=False)
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 10
        while fetch(server.url + "version") == "0" and time.monotonic() < deadline:  # the first build runs
            time.sleep(0.05)
        page = fetch(server.url)
        assert "Review: Is Physical Therapy Worth It for Back Pain?" in page and "fetch('/version'" in page
        version = fetch(server.url + "version")
        article = next((project / "issues" / SAMPLE_EDITION).glob("*.md"))
        article.write_text(article.read_text(encoding="utf-8") + "\nA paragraph added while previewing.\n")
        deadline = time.monotonic() + 10
        while fetch(server.url + "version") == version and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "A paragraph added while previewing." in fetch(server.url)
        article.write_text('+++\ntitle = "Broken"\n+++\n\n')  # an empty article: the page says what is wrong
        deadline = time.monotonic() + 10
        while "does not build" not in fetch(server.url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "article is empty" in fetch(server.url)
    finally:
        server.close()


def test_preview_on_a_busy_port_is_one_clear_line(project: Path, cli) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("preview", SAMPLE_EDITION, "--quick", "--port", port)
    assert result.code == 78
    assert (
        result.err
        == f"newsletter: cannot listen on 127.0.0.1:{port}: Address already in use; choose another with --port\n"
    )


def test_preview_answers_before_the_first_build(project: Path, monkeypatch) -> None:
    """The URL is served at once; the build (and the slow real-tool checks) come after it."""
    import threading

    import newsletter.checks.preview as preview_module

    release = threading.Event()
    real = preview_module.preview_edition

    def slow_build(*args, **kwargs):
        release.wait(5)  # a build that takes a while
        return real(*args, **kwargs)

    monkeypatch.setattr(preview_module, "preview_edition", slow_build)
    server = PreviewServer(SAMPLE_EDITION, lambda: open_workspace(project), port=0, tools=False)
    server.start()
    try:
        assert "Building the edition and running the checks" in fetch(server.url)
        assert fetch(server.url + "version") == "0"
        release.set()
        deadline = time.monotonic() + 10
        while fetch(server.url + "version") == "0" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Review: Is Physical Therapy Worth It for Back Pain?" in fetch(server.url)
    finally:
        release.set()
        server.close()
