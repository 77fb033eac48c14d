"""A corpus of reports in the shapes the major MTAs and providers send (tests/data/bounces/): Postfix, Exim and
Mail.ru's Exim, Sendmail, qmail, Exchange and Microsoft 365, Outlook.com, Gmail, Yahoo, Zoho, GMX, Yandex,
Courier, Domino, Amazon SES notices by mail, address verification, abuse reports, auto-replies, and forged
reports. Each file says what it must come to, one `X-Test-Expect: ADDRESS KIND REASON ACTION` header per
recipient; `{{verp:ROW}}` and `{{ours:ADDRESS}}` stand for the VERP return path and the Message-ID our send
gives, made with the test's key."""

from __future__ import annotations

import mailbox
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from conftest import DATA, LIST_ID, SAMPLE_EDITION, sent_journal, suppressed

from newsletter.audience.bounces import BounceReader
from newsletter.audience.tokens import message_id_for, unsubscribe_keys, verp_tag
from newsletter.base.workspace import open_workspace
from newsletter.delivery.journal import SentJournals

SECRET = "corpus-test-secret-0123456789"
KEYS = unsubscribe_keys(SECRET)
CORPUS = DATA / "bounces"
FILES = sorted(path.name for path in CORPUS.glob("*.eml"))
RECIPIENTS = [f"r{i}@example.org" for i in range(40)]  # journal rows 1..40


def report(name: str) -> bytes:
    """A corpus file with its placeholders made real."""
    text = (CORPUS / name).read_text(encoding="utf-8")
    text = re.sub(
        r"\{\{verp:(\d+)\}\}",
        lambda m: f"bounces+{verp_tag(KEYS, LIST_ID, SAMPLE_EDITION, int(m[1]))}@example.org",
        text,
    )
    text = re.sub(
        r"\{\{ours:([^}]+)\}\}",
        lambda m: message_id_for(SAMPLE_EDITION, LIST_ID, m[1], "seattle-neuro.example", KEYS[0]),
        text,
    )
    return text.encode()  # fmt: skip


def expected(name: str) -> list[tuple[str, ...]]:
    return [tuple(line.split()) for line in re.findall(r"^X-Test-Expect: (.+)$", report(name).decode(), re.M)]


@pytest.fixture
def corpus(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    toml = project / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + 'bounce_address = "bounces@example.org"\n', encoding="utf-8")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    sent_journal(project, RECIPIENTS)
    return project


def test_the_corpus_is_there_and_says_what_it_expects() -> None:
    assert len(FILES) >= 30, "the fixture set is missing"
    assert all(expected(name) for name in FILES), [name for name in FILES if not expected(name)]


@pytest.mark.parametrize("name", FILES)
def test_each_recipient_of_each_report_gets_its_reason_and_action(corpus: Path, name: str) -> None:
    workspace = open_workspace(corpus)
    sent = SentJournals(corpus, workspace.publication.list_id)
    reader = BounceReader(workspace, sent)
    try:
        got = []
        for verdict in reader.classify(message_from_bytes(report(name), policy=policy.compat32)):
            trusted, acted = reader.trusted(verdict), reader.act(verdict)
            action = ("suppressed" if acted else "unverified" if not trusted
                      else {"soft-bounce": "counted", "refused": "refused"}.get(verdict.kind, "none"))  # fmt: skip
            got.append((verdict.address or "-", verdict.kind, verdict.reason or "-", action))
    finally:
        reader.close()
        sent.close()
    assert sorted(got) == sorted(expected(name))


def nested(depth: int) -> bytes:
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    return f"From: x@example.net\r\nTo: bounces@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n{head}".encode()


POISON = [
    nested(600),  # deeper than the parser's recursion
    b"From: x@example.net\r\nTo: bounces@example.org\r\nSubject: =?x-unknown?q?abc?=\r\nContent-Type: text/plain; "
    b"charset=x-unknown\r\n\r\n\xff\xfe{not json\r\n",
]


def test_the_whole_corpus_in_one_run_with_poison_between(corpus: Path, cli, tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for data in (
        [report(name) for name in FILES[: len(FILES) // 2]] + POISON + [report(n) for n in FILES[len(FILES) // 2 :]]
    ):
        box.add(data)
    result = cli("bounces", "--maildir", tmp_path / "Maildir", "-v")
    assert result.code == 0, result.err
    everything = [row for name in FILES for row in expected(name)]
    assert suppressed(corpus) == {address: {"bounce": "bounce", "complaint": "complaint"}[kind]
                                  for address, kind, _, action in everything if action == "suppressed"}  # fmt: skip
    unverified = sum(action == "unverified" for *_, action in everything)
    assert f"{unverified} report(s) unverified" in result.out
    assert not list((tmp_path / "Maildir" / "new").iterdir()), "every message judged or set aside: none left"
    again = cli("bounces", "--maildir", tmp_path / "Maildir")
    assert again.code == 0 and "0 address(es) suppressed" in again.out
