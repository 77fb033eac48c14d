"""`newsletter serve` for real (uvicorn on a loopback port): one-click unsubscribe as mail providers send it, the
human path, tokens that do not verify, concurrency and kill -9, the archive and feed, and nothing else served."""

from __future__ import annotations

import concurrent.futures
import csv
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import (
    LIST_ID,
    SAMPLE_EDITION,
    SITE_SECRET,
    parse_message,
    parts,
    sent_journal,
    suppressed,
    wait_until,
)

from newsletter.audience.suppressions import SuppressionStore, store_path
from newsletter.audience.tokens import unsubscribe_keys, unsubscribe_token
from newsletter.base.model import Recipient
from newsletter.base.workspace import open_workspace
from newsletter.edition.compose import MessageFactory
from newsletter.edition.pipeline import render_checked
from newsletter.web.serve import route

pytest.importorskip("uvicorn")
ONE_CLICK = b"List-Unsubscribe=One-Click"


def request(base: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One HTTP request on a fresh connection: (status, headers, body)."""
    parsed = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def one_click(base: str, path: str, body: bytes = ONE_CLICK, kind: str = "application/x-www-form-urlencoded"):
    """The POST exactly as Gmail sends it (RFC 8058 section 3.1): no cookies, the body alone."""
    return request(base, "POST", path, body, {"Content-Type": kind, "Content-Length": str(len(body))})


def unsubscribe_path(email: str) -> str:
    return "/unsubscribe/" + unsubscribe_token(unsubscribe_keys(SITE_SECRET), LIST_ID, email)


def message_for(project: Path, email: str):
    factory = MessageFactory(render_checked(SAMPLE_EDITION, open_workspace(project)))
    return parse_message(factory.compose(Recipient(email, "Reader")).data)


def test_one_click_from_a_real_message_suppresses_once(project: Path, web_server) -> None:
    base = web_server()
    message = message_for(project, "reader@example.org")
    https, _mailto = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https.startswith(base + "/unsubscribe/") and "reader" not in https
    path = urllib.parse.urlsplit(https).path
    status, headers, body = one_click(base, path)
    assert status == 200 and body == b"Unsubscribed from Seattle Neuro Blog.", "short: nobody reads it"
    assert headers["content-type"].startswith("text/plain") and "content-security-policy" in headers
    assert "set-cookie" not in {k.lower() for k in headers}
    assert suppressed(project) == {"reader@example.org": "unsubscribe"}
    assert one_click(base, path)[0] == 200, "a repeat is fine"
    assert suppressed(project) == {"reader@example.org": "unsubscribe"}, "and changes nothing"


def test_multipart_one_click_works_too(project: Path, web_server) -> None:
    base = web_server()
    body = b'--xyz\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--xyz--\r\n'
    status, _, _ = one_click(base, unsubscribe_path("multi@example.org"), body, "multipart/form-data; boundary=xyz")
    assert status == 200 and suppressed(project) == {"multi@example.org": "unsubscribe"}


def test_get_never_changes_anything(project: Path, web_server) -> None:
    """Link scanners follow every link: GET (and HEAD) show a page with a button, and suppress nobody."""
    base = web_server()
    path = unsubscribe_path("scanned@example.org")
    for method in ("GET", "HEAD", "GET"):
        status, _, body = request(base, method, path)
        assert status == 200
    assert b"Unsubscribe from Seattle Neuro Blog?" in body and b'<form method="post"' in body
    assert b"s\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2@example.org" in body, "the address, masked"
    assert not store_path(project).exists() or suppressed(project) == {}


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-2], lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:], lambda t: "x" * len(t),
     lambda t: unsubscribe_token(unsubscribe_keys("another-secret-0123456789"), LIST_ID, "victim@example.org"),
     lambda t: unsubscribe_token(unsubscribe_keys(SITE_SECRET), "other.list.example", "victim@example.org"),
     lambda t: "victim@example.org"],
    ids=["truncated", "flipped", "garbage", "foreign-key", "other-list", "plain-address"],
)  # fmt: skip
def test_a_token_that_does_not_verify_changes_nothing(project: Path, web_server, mangle) -> None:
    base = web_server()
    token = mangle(unsubscribe_path("victim@example.org").rsplit("/", 1)[1])
    for method in ("GET", "POST"):
        status, headers, body = one_click(base, f"/unsubscribe/{token}") if method == "POST" else request(
            base, "GET", f"/unsubscribe/{token}")  # fmt: skip
        assert status == 400 and b"This link is not valid" in body
        assert "text/html" in headers["content-type"]
    assert not store_path(project).exists() or suppressed(project) == {}


def test_old_links_keep_working_after_the_secret_rotates(project: Path, site: int, monkeypatch, web_server) -> None:
    old_link = unsubscribe_path("loyal@example.org")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", f"a-new-key-0123456789,{SITE_SECRET}")
    base = web_server()
    assert one_click(base, old_link)[0] == 200
    assert suppressed(project) == {"loyal@example.org": "unsubscribe"}


def test_the_human_path_with_undo(project: Path, web_server) -> None:
    base = web_server()
    path = unsubscribe_path("human@example.org")
    status, _, page = request(base, "GET", path)
    assert status == 200 and b'name="from" value="page"' in page and suppressed(project) == {}
    status, _, page = one_click(base, path, ONE_CLICK + b"&from=page")  # what the page's button sends
    assert status == 200 and b"You are unsubscribed" in page
    undo = re.search(rb'action="\.\./resubscribe/([A-Za-z0-9_-]+)"', page)[1].decode()
    assert suppressed(project) == {"human@example.org": "unsubscribe"}
    status, _, page = request(base, "POST", f"/resubscribe/{undo}", b"", {"Content-Length": "0"})
    assert status == 200 and b"You are subscribed again" in page
    assert suppressed(project) == {}
    assert request(base, "POST", f"/resubscribe/{undo[:-3]}xyz", b"", {"Content-Length": "0"})[0] == 400
    assert request(base, "GET", f"/resubscribe/{undo}")[0] == 405, "undo only by POST, too"


def test_five_hundred_concurrent_unsubscribes_are_each_recorded_once(project: Path, web_server) -> None:
    base = web_server()
    emails = [f"burst{i:03d}@example.org" for i in range(500)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda e: one_click(base, unsubscribe_path(e))[0], emails))
    assert statuses == [200] * 500
    entries = suppressed(project)
    assert sorted(entries) == emails and set(entries.values()) == {"unsubscribe"}


def test_kill_9_mid_burst_leaves_a_readable_store_holding_every_answered_request(project: Path, site: int):
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(site)]
    server = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ})  # fmt: skip
    base = f"http://127.0.0.1:{site}"
    try:
        assert "serving Seattle Neuro Blog on" in server.stdout.readline()
        answered: list[str] = []

        def post(email: str) -> None:
            try:
                if one_click(base, unsubscribe_path(email))[0] == 200:
                    answered.append(email)
            except OSError:
                pass  # the server died under us

        emails = [f"kill{i:03d}@example.org" for i in range(400)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
            futures = [pool.submit(post, email) for email in emails]
            wait_until(lambda: len(answered) >= 60, "60 answered one-clicks", every=0.005)
            os.kill(server.pid, signal.SIGKILL)
            concurrent.futures.wait(futures)
    finally:
        server.kill()
        server.wait()
    stored = suppressed(project)
    assert 60 <= len(answered) < 400
    assert set(answered) <= set(stored), "every 200 was on disk before it was sent"


def test_a_send_in_progress_skips_someone_who_unsubscribes(project: Path, web_server, smtp_server, smtp_env):
    import asyncio
    import threading

    from newsletter.delivery.capture import CaptureHandler
    from newsletter.delivery.send import Send, SendOptions

    class Slow(CaptureHandler):
        async def handle_DATA(self, server, session, envelope):
            await asyncio.sleep(0.1)
            return await super().handle_DATA(server, session, envelope)

    server = smtp_server(handler=Slow())
    smtp_env(server.env("none"))
    base = web_server()
    with (project / "list.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["email"]] + [[f"s{i:02d}@example.org"] for i in range(60)])
    send = Send(SAMPLE_EDITION, project / "list.csv", open_workspace(project), SendOptions(connections=1))
    reports = []
    worker = threading.Thread(target=lambda: reports.append(send.run()))
    worker.start()
    try:
        wait_until(lambda: len(server.handler.received) >= 3, "the send's first 3 messages")
        assert one_click(base, unsubscribe_path("s50@example.org"))[0] == 200
        worker.join(60)
    finally:
        send.close()
    received = {r.rcpt_tos[0] for r in server.handler.received}
    assert "s50@example.org" not in received and len(received) == 59
    assert reports[0].progress.skipped == 1


def test_archive_web_versions_and_feed(project: Path, web_server, cli) -> None:
    import feedparser

    base = web_server()
    status, _, body = request(base, "GET", "/")
    assert status == 200 and b"Nothing here yet." in body, "nothing sent, nothing archived"
    sent_journal(project, ["a@example.org"])  # the edition went out
    status, _, body = request(base, "GET", "/")
    assert b'href="back-pain/"' in body and b"Is Physical Therapy Worth It for Back Pain?" in body
    assert b"spring-clinic" not in body, "drafts are not public"
    status, headers, page = request(base, "GET", "/back-pain/")
    assert status == 200
    text = page.decode("utf-8")
    assert "Is Physical Therapy Worth It for Back Pain?" in text and "To get it by email, subscribe at" in text
    assert "please call 911 and seek emergency help" in text
    for personal in ("XNLF", "unsubscribe/", "Unsubscribe", "a@example.org", "You receive this because"):
        assert personal not in text, personal
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert header in {k.lower() for k in headers}
    assert request(base, "GET", "/spring-clinic/")[0] == 404
    status, headers, xml = request(base, "GET", "/feed.xml")
    feed = feedparser.parse(xml)
    assert status == 200 and not feed.bozo and feed.version == "atom10"
    assert feed.feed.title == "Seattle Neuro Blog"
    assert [e.title for e in feed.entries] == ["Is Physical Therapy Worth It for Back Pain?"]
    assert feed.entries[0].link == f"{base}/back-pain/"
    out = cli("archive", "--out", "site")
    assert out.code == 0 and (project / "site" / "back-pain" / "index.html").is_file()
    assert not feedparser.parse((project / "site" / "feed.xml").read_bytes()).bozo


def test_drafts_are_listed_with_drafts(project: Path, web_server) -> None:
    base = web_server(drafts=True)
    _, _, body = request(base, "GET", "/")
    assert b"spring-clinic/" in body and b"back-pain/" in body
    assert request(base, "GET", "/spring-clinic/")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../newsletter.toml",
        "/newsletter.toml",
        "/issues/back-pain/issue.toml",
        "/%2e%2e/newsletter.toml",
        "/.newsletter/suppressions.sqlite",
        "/back-pain",
        "/back-pain/issue.toml",
        "/templates/email.html",
        "/unsubscribe/",
        "/..%2f..%2f",
    ],
)
def test_nothing_outside_the_routes_is_served(project: Path, web_server, path: str) -> None:
    base = web_server(drafts=True)
    status, _, body = request(base, "GET", path)
    assert status in (404, 405, 400), (path, status)
    assert b"list_id" not in body and b"SQLite" not in body and b"subject" not in body


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("archive", "")),
        ("/feed.xml", ("feed", "")),
        ("/unsubscribe/abc", ("unsubscribe", "abc")),
        ("/resubscribe/abc", ("resubscribe", "abc")),
        ("/back-pain/", ("edition", "back-pain")),
        ("/back-pain", ("", "")),
        ("/unsubscribe/", ("", "")),
        ("/unsubscribe/abc/", ("", "")),
        ("/unsubscribe/a/b", ("", "")),
        ("//", ("", "")),
        ("/a/b/", ("", "")),
        ("", ("", "")),
    ],
)
def test_routes_match_exactly(path: str, expected: tuple[str, str]) -> None:
    assert route(path) == expected


def test_a_method_a_route_does_not_take_gets_a_405_page_naming_the_allowed_ones(project: Path, web_server) -> None:
    base = web_server()
    status, headers, body = request(base, "POST", "/")
    assert status == 405 and headers["allow"] == "GET, HEAD" and b"Not allowed" in body
    assert "content-security-policy" in headers
    status, headers, _ = request(base, "DELETE", unsubscribe_path("x@example.org"))
    assert status == 405 and headers["allow"] == "GET, HEAD, POST" and suppressed(project) == {}


def test_behind_a_proxy_with_a_root_path(project: Path, web_server) -> None:
    """--root-path /news: the proxy strips the prefix, uvicorn puts it back in front of the path."""
    base = web_server(root_path="/news")
    path = unsubscribe_path("proxied@example.org")
    assert request(base, "GET", path)[0] == 200
    assert one_click(base, path)[0] == 200 and suppressed(project) == {"proxied@example.org": "unsubscribe"}
    assert request(base, "GET", "/")[0] == 200


def test_bodies_are_capped_and_a_flood_grows_nothing(project: Path, web_server) -> None:
    base = web_server()
    status, _, _ = one_click(base, unsubscribe_path("big@example.org"), b"List-Unsubscribe=One-Click&" + b"x" * 10_000)
    assert status == 413 and suppressed(project) == {}
    size = sum(p.stat().st_size for p in (project / ".newsletter").glob("suppressions*"))
    for i in range(200):
        one_click(base, f"/unsubscribe/{'A' * 40}{i:04d}")
    assert sum(p.stat().st_size for p in (project / ".newsletter").glob("suppressions*")) == size
    assert suppressed(project) == {}


def test_every_message_links_to_its_web_version(project: Path, site: int) -> None:
    message = message_for(project, "reader@example.org")
    text, html = parts(message)
    url = f"http://127.0.0.1:{site}/back-pain/"
    assert f"View in your browser: {url}" in text
    assert f'<a href="{url}"' in html and "View in your browser</a>" in html


def test_suppression_commands(project: Path, cli) -> None:
    assert cli("suppress", "=evil@example.org").out.startswith("=evil@example.org: suppressed")
    assert "was already suppressed" in cli("suppress", "=EVIL@example.org").out
    assert cli("suppress", "Ann <ann@example.org>", "--reason", "complaint").code == 0
    rows = list(csv.reader(cli("suppressions", "--csv").out.splitlines()))
    assert rows[0] == ["email", "reason", "source", "at", "detail"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [("'=evil@example.org", "manual", "command line"),
                                                      ("ann@example.org", "complaint", "command line")]  # fmt: skip
    assert cli("unsuppress", "ann@example.org").code == 0
    assert cli("unsuppress", "ann@example.org").code == 1
    assert cli("suppress", "not an address").code == 1
    assert (store_path(project).stat().st_mode & 0o777) == 0o600


def test_a_reader_unsubscribes_in_a_real_browser_and_every_page_passes_axe(project: Path, web_server) -> None:
    """Headless Chromium opens the unsubscribe link of a real message, clicks the button, sees the confirmation;
    axe-core (WCAG 2 A/AA) finds nothing on any page, and nothing scrolls sideways at 375 px."""
    from newsletter.checks.chromium import AXE_TAGS, browser
    from newsletter.checks.tools import node_modules

    modules = node_modules(project)
    axe = modules / "axe-core" / "axe.min.js" if modules else None
    if axe is None or not axe.is_file():
        pytest.fail("axe-core missing: scripts/install-test-tools") if os.environ.get("CI") else pytest.skip("axe")
    base = web_server()
    https = re.findall(r"<([^>]+)>", message_for(project, "clicker@example.org")["List-Unsubscribe"])[0]

    def audit(page) -> list[str]:
        page.add_script_tag(content=axe.read_text(encoding="utf-8"))
        result = page.evaluate("async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                               list(AXE_TAGS))  # fmt: skip
        return [f"{v['id']}: {v['help']}" for v in result["violations"]]

    with browser() as instance:
        if instance is None:
            pytest.fail("Chromium missing") if os.environ.get("CI") else pytest.skip("Chromium")
        for width, dark in ((375, False), (1024, True)):
            context = instance.new_context(
                viewport={"width": width, "height": 800}, bypass_csp=True, color_scheme="dark" if dark else "light"
            )  # the CSP forbids axe's script
            page = context.new_page()
            page.goto(https)
            assert page.get_by_role("heading").first.inner_text() == "Unsubscribe from Seattle Neuro Blog?"
            assert audit(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= width
            assert not suppressed(project) or dark, "looking is not unsubscribing"
            page.get_by_role("button", name="Unsubscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading").first.inner_text() == "You are unsubscribed"
            assert audit(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= width
            page.get_by_role("button", name="Undo: subscribe me again").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading").first.inner_text() == "You are subscribed again"
            assert audit(page) == []
            page.goto(base + "/")
            assert audit(page) == []
            context.close()
    assert suppressed(project) == {}


# --- what an attacker tried (issue 16) ----------------------------------------------------------------------------


def test_a_token_with_other_slack_bits_is_refused(project: Path, web_server) -> None:
    """base64 lets the last character's unused bits vary: only the token's one canonical spelling is accepted."""
    base = web_server()
    path = unsubscribe_path("slacks@example.org")  # 16 + 18 bytes: 46 characters, the last with 4 unused bits
    token = path.rsplit("/", 1)[1]
    assert len(token) == 46
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 1]  # same bytes, another spelling
    assert one_click(base, "/unsubscribe/" + twin)[0] == 400
    assert not store_path(project).exists() or suppressed(project) == {}
    assert one_click(base, path)[0] == 200


def test_reusing_the_unsubscribe_link_later_does_not_extend_the_undo(project: Path, web_server) -> None:
    base = web_server()
    path = unsubscribe_path("late@example.org")
    page = b"List-Unsubscribe=One-Click&from=page"
    first = one_click(base, path, page)[2].decode()
    assert "Undo: subscribe me again" in first
    with SuppressionStore(store_path(project)) as store:  # the unsubscribe was eight days ago
        store._db.execute("UPDATE suppressions SET at = at - 8 * 86400")
    later = one_click(base, path, page)[2].decode()
    assert "You are unsubscribed" in later and "Undo" not in later, "no fresh undo from an old unsubscribe"
    assert suppressed(project) == {"late@example.org": "unsubscribe"}


def test_undo_tokens_expire_after_seven_days(project: Path) -> None:
    from newsletter.audience.tokens import UNDO_SECONDS, read_undo_token, undo_token

    keys = unsubscribe_keys(SITE_SECRET)
    token = undo_token(keys, LIST_ID, "a@example.org", now=1_000_000)
    assert read_undo_token(keys, LIST_ID, token, now=1_000_000 + UNDO_SECONDS) == "a@example.org"
    assert read_undo_token(keys, LIST_ID, token, now=1_000_000 + UNDO_SECONDS + 1) is None


def _undo_path(base: str, email: str) -> str:
    body = one_click(base, unsubscribe_path(email), b"List-Unsubscribe=One-Click&from=page")[2].decode()
    return "/resubscribe/" + re.search(r'action="\.\./resubscribe/([^"]+)"', body)[1]


def test_resubscribe_from_another_site_is_refused(project: Path, web_server) -> None:
    base = web_server()
    undo = _undo_path(base, "csrf@example.org")
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site", "Origin": "null"}):
        status, _, _ = request(base, "POST", undo, headers={**headers, "Content-Length": "0"})
        assert status == 403, headers
    assert suppressed(project) == {"csrf@example.org": "unsubscribe"}
    status, _, _ = request(base, "POST", undo, headers={"Origin": base, "Content-Length": "0"})
    assert status == 200 and suppressed(project) == {}


def test_the_undo_page_says_when_a_bounce_keeps_the_address_suppressed(project: Path, web_server) -> None:
    base = web_server()
    undo = _undo_path(base, "bounced@example.org")
    with SuppressionStore(store_path(project)) as store:  # meanwhile `bounces` recorded a hard bounce
        store._db.execute("UPDATE suppressions SET reason = 'bounce'")
        store.add("bounced@example.org", "bounce", "bounces")
    status, _, body = request(base, "POST", undo, headers={"Content-Length": "0"})
    text = body.decode()
    assert status == 200 and "subscribed again" not in text and "still cannot mail" in text and "bounced" in text
    assert suppressed(project) == {"bounced@example.org": "bounce"}


def test_a_multipart_body_with_an_unknown_charset_is_a_400(project: Path, web_server, capfd) -> None:
    base = web_server()
    body = (b'--xyz\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n'
            b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nOne-Click\r\n--xyz--\r\n")  # fmt: skip
    status, _, _ = one_click(base, unsubscribe_path("m@example.org"), body, "multipart/form-data; boundary=xyz")
    assert status == 400 and "Traceback" not in capfd.readouterr().err
    assert not store_path(project).exists() or suppressed(project) == {}


def test_the_feed_takes_its_addresses_from_the_settings_never_from_host(project: Path, web_server) -> None:
    base = web_server(drafts=True)
    _, _, body = request(base, "GET", "/feed.xml", headers={"Host": "evil.example"})
    assert b"evil.example" not in body and base.encode() in body


def test_a_busy_store_never_stops_the_other_routes(project: Path, web_server) -> None:
    """Another process holding the store's write lock: the archive still answers, and the one-click waits for the
    lock without stopping the event loop, then gets its 200."""
    import sqlite3
    import threading

    base = web_server()
    SuppressionStore(store_path(project)).close()
    holder = sqlite3.connect(store_path(project), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    answers: list = []
    pending = threading.Thread(target=lambda: answers.append(one_click(base, unsubscribe_path("w@example.org"))))
    pending.start()
    try:
        time.sleep(0.5)
        assert request(base, "GET", "/")[0] == 200, "the loop answers while the one-click waits"
        assert not answers, "the one-click is still waiting for the lock"
    finally:
        holder.execute("COMMIT")
        holder.close()
    pending.join(15)
    assert answers and answers[0][0] == 200
    assert suppressed(project) == {"w@example.org": "unsubscribe"}


def test_a_connection_that_never_finishes_a_request_is_closed(project: Path, web_server) -> None:
    """Slowloris: a connection that sends half a request (or nothing) is closed at the deadline, and a thousand of
    them do not keep a one-click from its answer."""
    import socket

    base = web_server(request_timeout=1.0)
    port = urllib.parse.urlsplit(base).port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(1000)]
    try:
        for number, connection in enumerate(idle):
            if number % 2:
                connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never finished
        assert one_click(base, unsubscribe_path("busy@example.org"))[0] == 200
        closed = 0
        deadline = time.monotonic() + 10
        for connection in idle:
            connection.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += connection.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += 0
        assert closed == len(idle), f"{len(idle) - closed} connection(s) still open after the deadline"
    finally:
        for connection in idle:
            connection.close()


def test_serve_starts_again_at_once_on_the_same_port_after_kill_9(project: Path, site: int) -> None:
    """Connections of the killed server linger in TIME_WAIT; the port probe must not refuse what uvicorn can take."""
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(site)]
    base = f"http://127.0.0.1:{site}"
    for attempt in range(2):
        process = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert "serving" in process.stdout.readline(), process.stderr.read() if process.poll() is not None else ""
            deadline = time.monotonic() + 10
            while True:
                try:
                    status = request(base, "GET", "/")[0]
                    break
                except OSError:
                    assert time.monotonic() < deadline, "serve did not answer"
                    time.sleep(0.05)
            assert status == 200, attempt
            keep = http.client.HTTPConnection("127.0.0.1", site, timeout=5)
            keep.request("GET", "/")
            keep.getresponse().read()  # a kept-alive connection the kill leaves in TIME_WAIT on the server side
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


# --- the app without a server (httpx's ASGITransport) -------------------------------------------------------------


def test_the_app_answers_through_asgi_without_a_socket(project: Path, site: int) -> None:
    """Every route is a method of the app; httpx drives it in-process, so what needs no socket needs no server."""
    import asyncio

    import httpx

    from newsletter.web.serve import create_app

    async def exchange() -> list[httpx.Response]:
        app = create_app(open_workspace(project), drafts=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://news.test") as client:
            return [
                await client.get(unsubscribe_path("asgi@example.org")),
                await client.post(
                    unsubscribe_path("asgi@example.org"),
                    content=ONE_CLICK,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                ),
                await client.get("/"),
                await client.get("/nowhere/"),
                await client.put("/feed.xml"),
            ]

    page, one_click_answer, index, missing, wrong_method = asyncio.run(exchange())
    assert page.status_code == 200 and "Unsubscribe from Seattle Neuro Blog?" in page.text
    assert one_click_answer.status_code == 200 and one_click_answer.text == "Unsubscribed from Seattle Neuro Blog."
    assert index.status_code == 200 and "back-pain/" in index.text
    assert missing.status_code == 404 and wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert suppressed(project) == {"asgi@example.org": "unsubscribe"}
