"""Shared fixtures: a throw-away project folder with the shipped and test editions, a CLI runner, and a parser
that reads messages back with the `email` package and insists on zero defects."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from newsletter.base.workspace import open_workspace
from newsletter.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLE_EDITION = "back-pain"
LIST_ID = "newsletter.seattle-neuro.example"  # derived from the sample's From address
SAMPLE_ARTICLE = REPO / "issues" / SAMPLE_EDITION / "is-physical-therapy-worth-it-for-back-pain.md"
ENV_KEYS = (
    "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_SECURITY", "SMTP_TIMEOUT", "SMTP_CA_FILE",
    "NEWSLETTER_FROM", "NEWSLETTER_REPLY_TO", "NEWSLETTER_UNSUBSCRIBE_SECRET", "DKIM_PRIVATE_KEY_FILE",
    "DKIM_SELECTOR", "DKIM_DOMAIN", "IMAP_HOST", "IMAP_PORT", "IMAP_USERNAME", "IMAP_PASSWORD", "IMAP_FOLDER",
    "IMAP_CA_FILE", "IMAP_TIMEOUT", "SES_TOPIC_ARNS", "SES_SIGNING_CERT_FILE", "POSTMARK_WEBHOOK_USER",
    "POSTMARK_WEBHOOK_PASSWORD", "MAILGUN_WEBHOOK_SIGNING_KEY", "SENDGRID_WEBHOOK_PUBLIC_KEY",
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


def sent_journal(project: Path, emails: list[str], edition: str = SAMPLE_EDITION) -> None:
    """A send journal of `edition` in which each of `emails` was sent (row ids from 1, Message-ID
    <i@example.org> from 0), as a finished send leaves it; nothing changes when there is one already."""
    import time

    from newsletter.audience.recipients import Position
    from newsletter.base.model import Recipient
    from newsletter.delivery.journal import JournalStore, journal_path

    rows = [(Recipient(email), email.lower(), f"<{i}@example.org>") for i, email in enumerate(emails)]
    with JournalStore(journal_path(project, edition)) as journal:
        if journal.meta():
            return
        journal.start("e", "r", project / "list.csv")
        journal.add(rows, Position(0, len(rows) + 1), read_all=True)
        journal.commit([], list(range(1, len(rows) + 1)), time.time())
        journal._db.execute("UPDATE recipients SET state = 'sent'")


def wait_until(condition, what: str, timeout: float = 30.0, every: float = 0.01) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds saying what was awaited (a test that can
    hang instead of failing tells nobody anything)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(every)


def write_recipients(path: Path, rows: list[list[str]]) -> Path:
    """A recipients CSV with these rows (the first is the header)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def recipients_file(path: Path, count: int) -> Path:
    """A recipients CSV of `count` readers, r00000@example.org on."""
    return write_recipients(
        path, [["email", "name"], *([f"r{i:05d}@example.org", f"Reader {i}"] for i in range(count))]
    )


def suppressed(project: Path, field: str = "reason") -> dict[str, str]:
    """The project's suppression store as address -> one field of its entry (reason, source, edition, ...)."""
    from newsletter.audience.suppressions import list_suppressions, store_path

    return {entry.address: getattr(entry, field) for entry in list_suppressions(store_path(project))}


def configure(project: Path, **settings: str | None) -> None:
    """Set `[publication]` keys of the project's newsletter.toml (None removes one); `from_` stands for `from`."""
    toml = project / "newsletter.toml"
    names = {key.rstrip("_") for key in settings}
    lines = [line for line in toml.read_text(encoding="utf-8").splitlines() if line.split(" =")[0] not in names]
    lines += [f"{key.rstrip('_')} = {json.dumps(value, ensure_ascii=False)}"
              for key, value in settings.items() if value is not None]  # fmt: skip
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")


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


# --- real SMTP servers on loopback (aiosmtpd) ---------------------------------------------------------------------

PASSWORD = "s3cr3t-Pässword!"
USERNAME = "mailer"


class Authenticator:
    """Accepts USERNAME / PASSWORD; counts every AUTH attempt so tests can prove none was made."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.attempts += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        # handled=False on failure, or aiosmtpd sends no reply and the client hangs (docs/pitfalls.md)
        return AuthResult(success=ok, handled=False)


@dataclass
class SMTPServer:
    host: str
    port: int
    handler: object
    authenticator: Authenticator
    ca_file: Path | None

    def env(self, security: str, **extra: str) -> dict[str, str]:
        values = {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port), "SMTP_SECURITY": security, "SMTP_TIMEOUT": "5"}
        if self.ca_file:
            values["SMTP_CA_FILE"] = str(self.ca_file)
        values.update(extra)
        return values


@pytest.fixture(scope="session")
def test_ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path: Path, test_ca):
    """Start aiosmtpd servers on loopback: `smtp_server(tls="starttls"|"ssl"|None, auth=True, handler=...)`."""
    import ssl

    from newsletter.delivery.capture import CaptureHandler, capture_controller

    controllers = []

    def start(tls: str | None = None, auth: bool = False, handler=None, cert_names=("127.0.0.1",),
              self_signed: bool = False, **options):  # fmt: skip
        handler = handler or CaptureHandler()
        authenticator = Authenticator()
        ca_file = None
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            if self_signed:  # the CA's own certificate: signed by itself, trusted by nobody
                with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as pem:
                    pem.write(test_ca.private_key_pem.bytes() + test_ca.cert_pem.bytes())
                context.load_cert_chain(pem.name)
            else:
                test_ca.issue_cert(*cert_names).configure_cert(context)
            ca_file = tmp_path / "test-ca.pem"
            test_ca.cert_pem.write_to_path(str(ca_file))
        if auth:
            # with implicit TLS aiosmtpd does not know the session is encrypted, so it must not demand STARTTLS
            options.update(authenticator=authenticator, auth_require_tls=tls == "starttls")
        if tls == "starttls":
            options["tls_context"] = context
        elif tls == "ssl":
            options["ssl_context"] = context
        port = free_port()
        controller = capture_controller(handler, "127.0.0.1", port, **options)
        controller.start()
        controllers.append(controller)
        return SMTPServer("127.0.0.1", port, handler, authenticator, ca_file)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_env(monkeypatch: pytest.MonkeyPatch):
    """Apply an SMTP server's settings to the environment of the test."""

    def apply(values: dict[str, str]) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    return apply


# --- `newsletter serve` on loopback (uvicorn) ----------------------------------------------------------------------

SITE_SECRET = "serve-test-secret-0123456789"


@pytest.fixture
def site(project: Path, monkeypatch: pytest.MonkeyPatch):
    """Give the project a site_url on loopback and an unsubscribe secret; returns the port to serve on."""
    port = free_port()
    configure(project, site_url=f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SITE_SECRET)
    return port


@pytest.fixture
def web_server(project: Path, site: int):
    """Run the real app under uvicorn in a thread: `web_server(drafts=False, root_path="", app=None)` returns its
    base URL."""
    import threading
    import time

    import uvicorn

    from newsletter.web.serve import REQUEST_TIMEOUT, create_app, server_config

    servers = []

    def start(drafts: bool = False, root_path: str = "", request_timeout: float = REQUEST_TIMEOUT, app=None) -> str:
        """Serve `app` (by default the project's, made now) on the site's port."""
        app = app or create_app(open_workspace(project), drafts)
        config = server_config(app, port=site, root_path=root_path, request_timeout=request_timeout)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        servers.append((server, thread))
        return f"http://127.0.0.1:{site}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
