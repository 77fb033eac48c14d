"""The subscriber store and its commands: `subscribers` (and `subscribers import`), `subscribe`, `forget`, and
`send` / `export` without --recipients going to every confirmed subscriber."""

from __future__ import annotations

import csv
import io
import os
import stat
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import SAMPLE_EDITION, write_recipients

from newsletter.audience.subscribers import store_path

SECRET = "subscribers-test-secret-0123456789"


@pytest.fixture
def listed(project: Path, monkeypatch: pytest.MonkeyPatch, cli) -> Path:
    """A newsletter whose store holds ann and bo (confirmed, with a city) and cy (pending)."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    write_recipients(project / "old-list.csv", [["email", "name", "city"], ["ann@example.org", "Ann", "Oslo"],
                                                ["bo@example.org", "Bo", "Lund"]])  # fmt: skip
    assert cli("subscribers", "import", "old-list.csv", "--source", "Mailchimp export 2026-11", "--confirmed").code == 0
    assert cli("subscribe", "cy@example.org", "--name", "Cy").code == 0
    return project


def test_import_keeps_good_rows_reports_bad_ones_by_line_and_records_the_source(project: Path, cli) -> None:
    write_recipients(project / "list.csv", [
        ["email", "name"], ["ann@example.org", "Ann"], ["not-an-address", "X"], ["ANN@example.org", "Again"],
        ["=HYPERLINK(\"http://evil.example\")@example.org", "Eve"], ["bo@example.org", "=1+2"],
    ])  # fmt: skip
    result = cli("subscribers", "import", "list.csv", "--source", "website form, 2025")
    assert result.code == 0, result.err
    assert "imported 2 subscriber(s) from list.csv, pending confirmation" in result.out
    assert "list.csv:3: invalid address 'not-an-address'" in result.err
    assert "list.csv:4: duplicate of line 2 (ANN@example.org), kept once" in result.err
    assert "3 row(s) left out" in result.out
    path = store_path(project)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    again = cli("subscribers", "import", "list.csv", "--source", "again")
    assert "imported 0 subscriber(s)" in again.out and "2 already subscribed, left as they were" in again.out
    rows = list(csv.DictReader(io.StringIO(cli("subscribers", "--csv").out)))
    assert [(r["email"], r["status"], r["source"], r["consent"]) for r in rows] == [
        ("ann@example.org", "pending", "import", "website form, 2025"),
        ("bo@example.org", "pending", "import", "website form, 2025")]  # fmt: skip
    assert rows[1]["name"] == "'=1+2", "a cell a spreadsheet would run is neutralised"


def test_the_listing_shows_status_and_suppression(listed: Path, cli) -> None:
    assert cli("suppress", "bo@example.org", "--reason", "bounce").code == 0
    result = cli("subscribers")
    lines = result.out.splitlines()
    assert lines[0].startswith("ann@example.org  confirmed  ") and "Mailchimp export 2026-11" in lines[0]
    assert lines[1].startswith("bo@example.org  confirmed (suppressed: bounce)")
    assert lines[2].startswith("cy@example.org  pending  ")
    assert "3 shown; pending 1, confirmed 2, unsubscribed 0" in result.err
    assert cli("subscribers", "--status", "pending").out.splitlines() == [lines[2]]


def received(server) -> dict[str, object]:
    messages = [message_from_bytes(r.data, policy=policy.default) for r in server.handler.received]
    return {str(m["To"].addresses[0].addr_spec): m for m in messages}


def test_send_without_recipients_goes_to_confirmed_subscribers_as_at_the_start(listed: Path, cli, smtp_server,
                                                                              smtp_env) -> None:  # fmt: skip
    server = smtp_server()
    smtp_env(server.env("none"))
    first = cli("send", SAMPLE_EDITION, "--yes", "--limit", "1")
    assert first.code == 75, first.err  # stopped by --limit: resumable
    cli("subscribe", "dee@example.org", "--confirmed")  # joined after the send started: the next edition
    rest = cli("send", SAMPLE_EDITION, "--yes")
    assert rest.code == 0, rest.err
    got = received(server)
    assert sorted(got) == ["ann@example.org", "bo@example.org"], "confirmed only, as they were at the start"
    assert got["ann@example.org"]["To"].addresses[0].display_name == "Ann"
    snapshot = listed / ".newsletter" / "snapshots" / f"{SAMPLE_EDITION}.csv"
    assert stat.S_IMODE(os.stat(snapshot).st_mode) == 0o600


def test_export_without_recipients_writes_the_confirmed_subscribers_and_keeps_no_copy(listed: Path, cli) -> None:
    cli("subscribe", "gone@example.org", "--confirmed")
    cli("suppress", "gone@example.org")
    result = cli("export", SAMPLE_EDITION, "--out", "dry")
    assert result.code == 0, result.err
    assert "subscribers:4: unsubscribed (in the suppression list), skipped" in result.err, "no private path shown"
    manifest = list(csv.DictReader((listed / "dry" / "manifest.csv").open(encoding="utf-8")))
    assert [row["recipient"] for row in manifest] == ["ann@example.org", "bo@example.org"]
    assert not list((listed / ".newsletter" / "snapshots").glob("*.csv")), "the export's snapshot is gone"


def test_with_no_subscribers_and_no_recipients_a_send_says_what_to_do(project: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    result = cli("send", SAMPLE_EDITION, "--yes")
    assert result.code == 1 and "no --recipients and no confirmed subscribers" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_forget_leaves_no_file_naming_the_address_and_it_is_never_mailed_again(listed: Path, cli, smtp_server,
                                                                               smtp_env) -> None:  # fmt: skip
    server = smtp_server(handler=None)
    smtp_env(server.env("none"))
    assert cli("send", SAMPLE_EDITION, "--yes").code == 0
    assert cli("export", SAMPLE_EDITION, "--out", "dry").code == 0
    assert cli("build", SAMPLE_EDITION).code == 0
    result = cli("forget", "Ann@Example.org")
    assert result.code == 0, result.err
    assert "Ann@Example.org: subscriber record and consent record deleted" in result.out
    assert "1 send journal(s)" in result.out and "1 export(s)" in result.out and "never be mailed again" in result.out
    assert "old-list.csv (a list you keep) still names it" not in result.err, "that list was imported, not sent"
    for folder in (".newsletter", "build", "dry"):
        for path in (listed / folder).rglob("*"):
            if path.is_file():
                assert b"ann@example.org" not in path.read_bytes().lower(), path
    assert not (listed / "dry" / "00001-ann@example.org.eml").exists()
    write_recipients(listed / "list.csv", [["email"], ["ann@example.org"], ["new@example.org"]])
    again = cli("send", "spring-clinic", "--recipients", "list.csv", "--yes")
    assert again.code == 0, again.err
    assert [r.rcpt_tos for r in server.handler.received][-1:] == [("new@example.org",)], "ann is never mailed again"
    status = cli("status", SAMPLE_EDITION)
    assert "sent 2" in status.out, "the journal still counts what was sent"


def test_subscribe_by_hand_mails_the_confirmation_unless_confirmed(project: Path, cli, smtp_server, smtp_env,
                                                                    monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    server = smtp_server()
    smtp_env(server.env("none"))
    result = cli("subscribe", "dee@example.org", "--name", "Dee")
    assert result.code == 0 and "dee@example.org: pending; confirmation mail sent" in result.out, result.err
    (mail,) = [message_from_bytes(r.data, policy=policy.default) for r in server.handler.received]
    assert str(mail["To"]) == "Dee <dee@example.org>" and "/confirm/" in mail.get_body(("plain",)).get_content()
    again = cli("subscribe", "dee@example.org")
    assert "already pending; no confirmation mail now" in again.out and len(server.handler.received) == 1
    assert cli("subscribe", "eve@example.org", "--confirmed").out.strip() == "eve@example.org: confirmed"
    assert len(server.handler.received) == 1


def test_a_send_from_the_list_resumes_after_a_forget_and_skips_the_forgotten(listed: Path, cli, smtp_server,
                                                                             smtp_env) -> None:  # fmt: skip
    server = smtp_server()
    smtp_env(server.env("none"))
    assert cli("send", SAMPLE_EDITION, "--yes", "--limit", "1").code == 75
    assert cli("forget", "bo@example.org").code == 0
    resumed = cli("send", SAMPLE_EDITION, "--yes")
    assert resumed.code == 0, resumed.err
    assert sorted(received(server)) == ["ann@example.org"], "the snapshot's changed row was not refused, nor sent"


@pytest.mark.parametrize("address", ["a@b.org\r\nBcc: victim@example.org", "=cmd|x@evil", "no-at-sign"])
def test_subscribe_refuses_what_is_no_address_and_stores_nothing(project: Path, cli, monkeypatch, address) -> None:
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    result = cli("subscribe", address)
    assert result.code == 1 and "invalid address" in result.err and len(result.err.strip().splitlines()) == 1
    assert not store_path(project).exists() or "0 shown" in cli("subscribers").err
