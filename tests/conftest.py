"""Shared fixtures: a throw-away project folder with the shipped and test editions, a CLI runner, and a parser
that reads messages back with the `email` package and insists on zero defects."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE_EDITION = "back-pain"
SAMPLE_ARTICLE = REPO / "issues" / SAMPLE_EDITION / "is-physical-therapy-worth-it-for-back-pain.md"
ENV_KEYS = (
    "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_SECURITY", "SMTP_TIMEOUT", "SMTP_CA_FILE",
    "NEWSLETTER_FROM", "NEWSLETTER_REPLY_TO", "NEWSLETTER_UNSUBSCRIBE_SECRET",
)  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory like a user's: newsletter.toml, the shipped edition and the test editions."""
    shutil.copy(REPO / "newsletter.toml", tmp_path / "newsletter.toml")
    shutil.copytree(REPO / "issues", tmp_path / "issues")
    for edition in (DATA / "editions").iterdir():
        shutil.copytree(edition, tmp_path / "issues" / edition.name)
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(project: Path, capsys: pytest.CaptureFixture[str]):
    """Run the command line in-process, in the project folder; returns exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def parse_message(data: bytes) -> EmailMessage:
    """Parse with policy.default and fail on any defect in any part."""
    message = message_from_bytes(data, policy=policy.default)
    for part in message.walk():
        assert not part.defects, f"defects in {part.get_content_type()}: {part.defects}"
    return message  # type: ignore[return-value]


def parts(message: EmailMessage) -> tuple[str, str]:
    """The (text, html) bodies of a multipart/alternative newsletter, checking their order and types."""
    assert message.get_content_type() == "multipart/alternative"
    text_part, html_part = message.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    return text_part.get_content(), html_part.get_content()
