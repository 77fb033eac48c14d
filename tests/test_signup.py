"""Readers join the list on `serve`: the hosted form and the snippet (real Chromium, axe), double opt-in with the
scanner rule, the confirmation mail at a real SMTP server on loopback (parsed back field by field), abuse
limits, an SMTP server that is down, and kill -9."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import SITE_SECRET, free_port, wait_until
from test_serve import request

from newsletter.audience.subscribers import SubscriberStore, store_path
from newsletter.audience.suppressions import SuppressionStore
from newsletter.base.workspace import open_workspace

pytest.importorskip("uvicorn")
DELAY = "1.5"  # the scanner window, shortened (the default is 120 s)
LINK = re.compile(r"https?://\S+/confirm/[A-Za-z0-9_-]+")


@pytest.fixture
def signups(project: Path, site: int, smtp_server, smtp_env, monkeypatch, web_server):
    """`serve` with an SMTP server on loopback for its mails; returns (base URL, the SMTP server)."""
    server = smtp_server()
    smtp_env(server.env("none"))
    monkeypatch.setenv("NEWSLETTER_CONFIRM_DELAY", DELAY)
    return web_server(), server


def sign_up(base: str, email: str, name: str = "", **more: str) -> tuple[int, dict, bytes]:
    body = urllib.parse.urlencode({"email": email, "name": name, **more}).encode()
    return request(base, "POST", "/subscribe", body, {"Content-Type": "application/x-www-form-urlencoded"})


def subscriber(project: Path, email: str):
    with SubscriberStore(store_path(project)) as store:
        return store.get(email)


def mails_to(server, email: str) -> list:
    return [message_from_bytes(r.data, policy=policy.default) for r in server.handler.received if email in r.rcpt_tos]


def confirmation(server, email: str):
    """The one confirmation mail to `email`, waited for; checked field by field; and its link."""
    wait_until(lambda: mails_to(server, email), f"the confirmation mail to {email}")
    (mail,) = mails_to(server, email)
    assert mail["To"].addresses[0].addr_spec == email
    assert mail["From"].addresses[0].addr_spec == "newsletter@seattle-neuro.example"
    assert str(mail["Subject"]) == "Confirm your subscription to Seattle Neuro Blog"
    assert re.fullmatch(r"<[^<>@\s]+@seattle-neuro\.example>", mail["Message-ID"]) and mail["Date"]
    assert "List-Unsubscribe" not in mail, "not list mail"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert all(len(line) <= 78 or LINK.search(line) for line in text.splitlines())
    for part in (text, html):
        assert "Medical Disclaimer" in part or "medical" in part.lower(), "the publication's footer"
    (link,) = set(LINK.findall(text))
    assert f'href="{link}"' in html and "@" not in link, "the link hides the address"
    return mail, link


# --- the whole path, in a browser ------------------------------------------------------------------------------


def axe_audit():
    from newsletter.checks.chromium import AXE_TAGS
    from newsletter.checks.tools import node_modules

    modules = node_modules(Path.cwd())
    axe = modules / "axe-core" / "axe.min.js" if modules else None
    if axe is None or not axe.is_file():
        pytest.fail("axe-core missing: scripts/install-test-tools") if os.environ.get("CI") else pytest.skip("axe")

    def audit(page) -> list[str]:
        page.add_script_tag(content=axe.read_text(encoding="utf-8"))
        result = page.evaluate("async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
                               list(AXE_TAGS))  # fmt: skip
        return [f"{v['id']}: {v['help']}" for v in result["violations"]]

    return audit


@pytest.fixture
def chromium():
    from newsletter.checks.chromium import browser

    with browser() as instance:
        if instance is None:
            pytest.fail("Chromium missing") if os.environ.get("CI") else pytest.skip("Chromium")
        yield instance


def test_a_reader_signs_up_on_the_hosted_page_and_one_click_in_the_mail_confirms(project: Path, signups, chromium):
    base, server = signups
    audit = axe_audit()
    context = chromium.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True)  # axe's script
    page = context.new_page()
    page.goto(base + "/")
    page.get_by_role("link", name="Subscribe by email").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading").first.inner_text() == "Subscribe to Seattle Neuro Blog"
    assert audit(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= 375
    assert "I agree to receive Seattle Neuro Blog by email" in page.content()
    page.get_by_label("Email address").fill("reader@example.org")
    page.get_by_label("Name (optional)").fill("Rea Der")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading").first.inner_text() == "Check your inbox"
    assert audit(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= 375
    mail, link = confirmation(server, "reader@example.org")
    assert mail["To"].addresses[0].display_name == "Rea Der"
    assert subscriber(project, "reader@example.org").status == "pending"
    time.sleep(float(DELAY))  # a person opens the mail after the scanners have been
    page.goto(link)
    assert page.get_by_role("heading").first.inner_text() == "You are subscribed"
    assert audit(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= 375
    confirmed = subscriber(project, "reader@example.org")
    assert confirmed.status == "confirmed" and confirmed.source == "form" and confirmed.signup_ip == "127.0.0.1"
    assert confirmed.consent.startswith("I agree to receive") and "HeadlessChrome" in confirmed.confirm_agent
    page.goto(link)
    assert page.get_by_role("heading").first.inner_text() == "You are already subscribed"
    page.get_by_role("button", name="Undo: unsubscribe me").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading").first.inner_text() == "You are unsubscribed"
    context.close()


def test_the_snippet_on_another_sites_page_signs_up(project: Path, signups, chromium, cli, tmp_path: Path) -> None:
    base, server = signups
    snippet = cli("form-snippet")
    assert snippet.code == 0 and f'action="{base}/subscribe"' in snippet.out
    head = '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Blog</title></head>'
    (tmp_path / "blog.html").write_text(f"{head}<body><main><h1>Our blog</h1>{snippet.out}</main></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    blog = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=blog.serve_forever, daemon=True).start()
    try:
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{blog.server_address[1]}/blog.html")
        assert axe_audit()(page) == []
        page.get_by_label("Email address").fill("blogreader@example.org")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert page.url == f"{base}/subscribe" and page.get_by_role("heading").first.inner_text() == "Check your inbox"
    finally:
        blog.shutdown()
    confirmation(server, "blogreader@example.org")
    assert subscriber(project, "blogreader@example.org").status == "pending"


def test_a_scanner_fetching_the_link_inside_the_window_confirms_nothing(project: Path, signups) -> None:
    base, server = signups
    assert sign_up(base, "scanned@example.org")[0] == 200
    _, link = confirmation(server, "scanned@example.org")
    for flags in (["-s"], ["-s", "-I"], ["-s", "-I"], ["-s"]):  # GET, HEAD, as link scanners do
        page = subprocess.run(["curl", *flags, "--max-time", "10", link], capture_output=True, text=True).stdout
        assert "Yes, subscribe me" in page or page.startswith("HTTP/1.1 200")
    assert subscriber(project, "scanned@example.org").status == "pending"
    time.sleep(float(DELAY))
    head = subprocess.run(["curl", "-s", "-I", "--max-time", "10", link], capture_output=True, text=True)
    assert head.stdout.startswith("HTTP/1.1 200") and subscriber(project, "scanned@example.org").status == "pending"
    post = subprocess.run(["curl", "-s", "-X", "POST", "--max-time", "10", link], capture_output=True, text=True)
    assert "You are subscribed" in post.stdout and subscriber(project, "scanned@example.org").status == "confirmed"
    tampered = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    assert request(base, "GET", urllib.parse.urlsplit(tampered).path)[0] == 400


# --- abuse ------------------------------------------------------------------------------------------------------


def asgi_posts(project: Path, posts: list[tuple[str, dict]]) -> list:
    """POST /subscribe through the app in-process, each from its own client IP (as a proxy would say)."""
    import httpx

    from newsletter.web.serve import create_app

    async def run() -> list:
        app = create_app(open_workspace(project))
        answers = []
        for client, fields in posts:
            transport = httpx.ASGITransport(app=app, client=(client, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http_client:
                answers.append(await http_client.post("/subscribe", data=fields))
        return answers

    return asyncio.run(run())


def outbox(project: Path) -> list[tuple]:
    with SubscriberStore(store_path(project)) as store:
        return store._db.execute("SELECT key, kind FROM outbox ORDER BY id").fetchall()


def test_the_form_cannot_be_used_to_mail_bomb_or_to_learn_who_is_subscribed(project: Path, site: int) -> None:
    with SuppressionStore(store_path(project).with_name("suppressions.sqlite")) as store:
        store.add("bounced@example.org", "bounce", "test")
    ten = asgi_posts(project, [(f"10.0.0.{n}", {"email": "victim@example.org"}) for n in range(10)])
    assert [a.status_code for a in ten] == [200] * 10
    assert outbox(project) == [("victim@example.org", "confirm")], "ten sign-ups in a minute: one mail"
    twenty = asgi_posts(project, [("10.9.9.9", {"email": f"a{n}@example.org"}) for n in range(20)])
    assert [a.status_code for a in twenty] == [200] * 5 + [429] * 15
    trap = asgi_posts(project, [("10.1.1.1", {"email": "bot@example.org", "website": "http://spam.example"})])
    assert trap[0].status_code == 200 and subscriber(project, "bot@example.org") is None
    with SubscriberStore(store_path(project)) as store:
        store._db.execute("UPDATE subscribers SET status = 'confirmed' WHERE key = 'a0@example.org'")
        store._db.execute("UPDATE outbox SET created = created - 3600")  # past the ten minutes
    before = outbox(project)
    answers = asgi_posts(project, [("10.2.2.1", {"email": "brand-new@example.org"}),
                                   ("10.2.2.2", {"email": "a1@example.org"}),  # pending
                                   ("10.2.2.3", {"email": "a0@example.org"}),  # confirmed
                                   ("10.2.2.4", {"email": "bounced@example.org"}),  # suppressed
                                   ("10.2.2.5", {"email": "bot2@example.org", "website": "x"})])  # fmt: skip
    assert len({a.content for a in answers}) == 1, "the same answer, byte for byte, whoever the address is"
    assert len({tuple(sorted((k, v) for k, v in a.headers.items() if k != "date")) for a in answers}) == 1
    new = outbox(project)[len(before) :]
    assert new == [("brand-new@example.org", "confirm"), ("a1@example.org", "confirm")], "none to the confirmed, "
    "the suppressed or the bot; a pending address gets another after ten minutes"
    again = asgi_posts(project, [("10.2.3.1", {"email": "a1@example.org"})])
    assert again[0].status_code == 200 and outbox(project)[len(before) + 2 :] == [], "not twice in ten minutes"
    assert asgi_posts(project, [("10.3.3.3", {"email": "not an address"})])[0].status_code == 400
    assert asgi_posts(project, [("10.3.3.4", {"email": "x@example.org", "name": "n" * 5000})])[0].status_code == 413


def test_next_leads_back_only_to_the_publishers_own_site(project: Path, site: int) -> None:
    own, other = "https://seattle-neuro.example/blog/post", "https://evil.example/phish"
    ours, theirs = asgi_posts(project, [("10.4.4.1", {"email": "n1@example.org", "next": own}),
                                        ("10.4.4.2", {"email": "n2@example.org", "next": other})])  # fmt: skip
    assert f'href="{own}"' in ours.text and "evil.example" not in theirs.text


# --- a relay that is down, a server that is killed ---------------------------------------------------------------


def relay(port: int) -> dict[str, str]:
    """The SMTP settings of a relay on loopback that is not running yet."""
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none", "SMTP_TIMEOUT": "2"}


def mailed_once(controller, email: str) -> None:
    """The mail arrives (the retry comes within seconds), and no second one after it."""
    wait_until(lambda: mails_to(controller, email), f"the mail to {email}", timeout=40)
    time.sleep(1)
    assert len(mails_to(controller, email)) == 1


def capture_on(port: int):
    from newsletter.delivery.capture import CaptureHandler, capture_controller

    controller = capture_controller(CaptureHandler(), "127.0.0.1", port)
    controller.start()
    return controller


def test_a_sign_up_while_the_relay_is_down_is_mailed_once_when_it_is_back(project: Path, site: int, monkeypatch,
                                                                          web_server) -> None:  # fmt: skip
    port = free_port()
    for name, value in relay(port).items():
        monkeypatch.setenv(name, value)
    base = web_server()
    assert sign_up(base, "patient@example.org")[0] == 200
    time.sleep(1)  # a first attempt fails: nothing listens yet
    controller = capture_on(port)
    try:
        mailed_once(controller, "patient@example.org")
    finally:
        controller.stop()


def test_kill_9_right_after_a_sign_up_loses_nothing_and_mails_once(project: Path, site: int) -> None:
    port = free_port()
    env = {**os.environ, **relay(port), "NEWSLETTER_UNSUBSCRIBE_SECRET": SITE_SECRET}
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(site)]
    base = f"http://127.0.0.1:{site}"

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: _answers(base), "serve to answer")
        return process

    first = start()
    try:
        assert sign_up(base, "survivor@example.org")[0] == 200
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    assert subscriber(project, "survivor@example.org").status == "pending", "answered 200: it was on disk"
    controller = capture_on(port)
    second = start()
    try:
        mailed_once(controller, "survivor@example.org")
    finally:
        second.kill()
        second.wait()
        controller.stop()


def _answers(base: str) -> bool:
    try:
        return request(base, "GET", "/subscribe")[0] == 200
    except OSError:
        return False


def test_a_welcome_follows_the_confirmation_when_asked_for(project: Path, site: int, smtp_server, smtp_env,
                                                           monkeypatch, web_server) -> None:  # fmt: skip
    from conftest import configure

    configure(project, welcome="true")
    server = smtp_server()
    smtp_env(server.env("none"))
    base = web_server()
    assert sign_up(base, "welcomed@example.org", "Wel")[0] == 200
    _, link = confirmation(server, "welcomed@example.org")
    assert request(base, "POST", urllib.parse.urlsplit(link).path)[0] == 200
    wait_until(lambda: len(mails_to(server, "welcomed@example.org")) == 2, "the welcome mail")
    welcome = mails_to(server, "welcomed@example.org")[1]
    assert str(welcome["Subject"]) == "Welcome to Seattle Neuro Blog" and welcome["Message-ID"]
    assert "you are subscribed" in welcome.get_body(("plain",)).get_content()
    assert request(base, "POST", urllib.parse.urlsplit(link).path)[0] == 200
    time.sleep(1)
    assert len(mails_to(server, "welcomed@example.org")) == 2, "a second confirmation changes nothing"


def test_a_confirmation_while_the_suppression_store_is_busy_still_lifts_the_unsubscribe(project: Path, signups):
    """Someone who unsubscribed signs up again and confirms while another process writes to the suppression
    store: the confirmation waits its turn, and the earlier unsubscribe is lifted all the same."""
    import sqlite3

    base, server = signups
    with SuppressionStore(store_path(project).with_name("suppressions.sqlite")) as store:
        store.add("back@example.org", "unsubscribe", "test")
    assert sign_up(base, "back@example.org")[0] == 200
    _, link = confirmation(server, "back@example.org")
    busy = sqlite3.connect(
        store_path(project).with_name("suppressions.sqlite"), isolation_level=None, check_same_thread=False
    )
    busy.execute("BEGIN IMMEDIATE")  # another writer holds the lock...
    threading.Timer(0.5, busy.execute, ("COMMIT",)).start()  # ...for half a second
    status, _, page = request(base, "POST", urllib.parse.urlsplit(link).path)
    busy.close()
    assert status == 200 and b"You are subscribed" in page
    assert subscriber(project, "back@example.org").status == "confirmed"
    with SuppressionStore(store_path(project).with_name("suppressions.sqlite")) as store:
        assert store.suppressed("back@example.org") is None, "the unsubscribe is lifted"


def test_a_confirmation_to_an_international_domain_names_it_in_its_idna_form(project: Path, signups) -> None:
    base, server = signups
    assert sign_up(base, "zoe@exämple.org", "Zoë")[0] == 200
    wait_until(lambda: server.handler.received, "the confirmation mail")
    (mail,) = [message_from_bytes(r.data, policy=policy.default) for r in server.handler.received]
    assert mail["To"].addresses[0].addr_spec == "zoe@xn--exmple-cua.org"
    assert mail["To"].addresses[0].display_name == "Zoë"
