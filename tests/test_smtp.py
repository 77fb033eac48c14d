"""send-test against real SMTP servers on loopback (aiosmtpd): plain, STARTTLS, implicit TLS, AUTH, and every
failure a user meets, each as one clear line. Received messages are parsed back and compared with `build`."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PASSWORD, SAMPLE_EDITION, USERNAME, free_port, parse_message, parts

from newsletter.delivery.capture import CaptureHandler

pytest.importorskip("aiosmtpd")


def headers_without(message, *skip: str) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in message.items() if k not in skip]


def test_plain_send_test_matches_build_field_by_field(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server()
    smtp_env(server.env("none"))
    assert cli("build", SAMPLE_EDITION).code == 0
    built = parse_message((project / "build" / SAMPLE_EDITION / "email.eml").read_bytes())
    result = cli("send-test", SAMPLE_EDITION, "--to", "newsletter@seattle-neuro.example")  # build's recipient
    assert result.code == 0, result.err
    (received,) = server.handler.received
    assert received.mail_from == "newsletter@seattle-neuro.example"
    assert received.rcpt_tos == ("newsletter@seattle-neuro.example",)
    message = parse_message(received.data)
    assert message["Subject"] == "[TEST] " + built["Subject"]
    assert headers_without(message, "Subject", "Date", "Message-ID") == headers_without(
        built, "Subject", "Date", "Message-ID"
    )
    assert message["Message-ID"] != built["Message-ID"], "a test send has its own Message-ID"
    assert message["Message-ID"].endswith(".test.back-pain@seattle-neuro.example>")
    assert parts(message) == parts(built)
    assert f"sent to newsletter@seattle-neuro.example: Message-ID {message['Message-ID']}: 250 2.0.0 OK" in result.out


def test_starttls_with_ca_file_and_auth(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls="starttls", auth=True)
    smtp_env(server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD))
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org", "--to", "colleague@example.org")
    assert result.code == 0, result.err
    assert server.authenticator.attempts == 1
    assert [r.rcpt_tos for r in server.handler.received] == [("me@example.org",), ("colleague@example.org",)]
    assert len({r.peer for r in server.handler.received}) == 1, "one connection serves all addresses"
    assert result.out.count("sent to ") == 2


def test_implicit_tls(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls="ssl", auth=True)
    smtp_env(server.env("ssl", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD))
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 0, result.err
    assert len(server.handler.received) == 1


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate_is_refused_by_default(project: Path, cli, smtp_server, smtp_env, security) -> None:
    server = smtp_server(tls=security, auth=True)
    smtp_env({k: v for k, v in server.env(security, SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD).items()
              if k != "SMTP_CA_FILE"})  # fmt: skip
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78
    assert f"cannot connect to 127.0.0.1:{server.port}: TLS certificate not trusted" in result.err
    assert "set SMTP_CA_FILE" in result.err
    assert server.authenticator.attempts == 0 and not server.handler.received


def test_self_signed_certificate_is_refused(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls="starttls", auth=True, self_signed=True)
    smtp_env({k: v for k, v in server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD).items()
              if k != "SMTP_CA_FILE"})  # fmt: skip
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78
    assert "TLS certificate not trusted (self-signed certificate)" in result.err, result.err
    assert server.authenticator.attempts == 0 and not server.handler.received


def test_certificate_for_another_host_is_refused(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls="starttls", cert_names=("mail.example.net",))
    smtp_env(server.env("starttls"))
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78 and "TLS certificate not trusted" in result.err and "mismatch" in result.err
    assert not server.handler.received


def test_starttls_fails_closed_without_sending_credentials(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls=None, auth=True)  # offers AUTH in clear text, no STARTTLS
    smtp_env(server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD))
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78
    assert f"127.0.0.1:{server.port} does not offer STARTTLS; refusing to send credentials" in result.err
    assert server.authenticator.attempts == 0 and not server.handler.received


def test_plain_text_only_when_asked_for(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls=None, auth=True)
    smtp_env(server.env("none", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=PASSWORD))
    assert cli("send-test", SAMPLE_EDITION, "--to", "me@example.org").code == 0
    assert server.authenticator.attempts == 1


def test_wrong_password_is_one_clear_line(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server(tls="starttls", auth=True)
    smtp_env(server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD="wrong-" + PASSWORD))
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78
    assert result.err.startswith(
        f"newsletter: authentication failed for user {USERNAME} at 127.0.0.1:{server.port}: 535"
    )
    assert result.err.count("\n") == 1 and not server.handler.received


def test_server_down(project: Path, cli, smtp_env) -> None:
    port = free_port()
    smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none"})
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 75
    assert (
        result.err == f"newsletter: cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)\n"
    )


def test_silent_server_times_out_within_smtp_timeout(project: Path, cli, smtp_env) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none", "SMTP_TIMEOUT": "1"})
        start = time.monotonic()
        result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
        elapsed = time.monotonic() - start
    assert result.code == 75
    assert f"cannot connect to 127.0.0.1:{port}: no answer within 1 s (SMTP_TIMEOUT)" in result.err
    assert elapsed < 5 * 1, "within a few times SMTP_TIMEOUT (1 s): the client does not wait for ever"


class Refusing(CaptureHandler):
    """Answers 550 to RCPT for unknown@ and 554 to DATA for spam@; stores the rest."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("unknown@"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.rcpt_tos[0].startswith("spam@"):
            return "554 5.7.1 Message rejected as spam"
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_rcpt_550_and_data_554_are_reported_per_address(project, cli, smtp_server, smtp_env, pipelining) -> None:
    server = smtp_server(handler=Refusing(pipelining=pipelining))
    smtp_env(server.env("none"))
    result = cli("send-test", SAMPLE_EDITION, "--to", "unknown@example.org", "--to", "spam@example.org",
                 "--to", "me@example.org")  # fmt: skip
    assert result.code == 1
    where = f"127.0.0.1:{server.port}"
    assert (f"newsletter: not sent to unknown@example.org: {where} refused recipient unknown@example.org: "
            "550 5.1.1 No such user here") in result.err  # fmt: skip
    assert (f"newsletter: not sent to spam@example.org: {where}: message to spam@example.org refused after DATA: "
            "554 5.7.1 Message rejected as spam") in result.err  # fmt: skip
    assert "sent to me@example.org" in result.out
    assert [r.rcpt_tos for r in server.handler.received] == [("me@example.org",)]


def test_non_ascii_subject_and_names_arrive_intact(project: Path, cli, smtp_server, smtp_env, monkeypatch) -> None:
    server = smtp_server()
    smtp_env(server.env("none", NEWSLETTER_FROM="Clínica Ñandú — Zürich <news@example.org>"))
    result = cli("send-test", "spring-clinic", "--to", "renée@exämple.org")
    assert result.code == 1 and "invalid address" in result.err  # non-ASCII local parts need SMTPUTF8: refused
    result = cli("send-test", "spring-clinic", "--to", "Zoë Lüdenscheidt 😀 <rene@exämple.org>", "--to",
                 "jo@straße.de")  # fmt: skip
    assert result.code == 0, result.err
    received, strasse = server.handler.received
    assert strasse.rcpt_tos == ("jo@xn--strae-oqa.de",), "IDNA 2008: not strasse.de, someone else's domain"
    assert received.rcpt_tos == ("rene@xn--exmple-cua.org",)
    message = parse_message(received.data)
    assert message["Subject"] == "[TEST] Spring at the clinic — new hours, stretches & a café 🌷"
    assert message["From"].addresses[0].display_name == "Clínica Ñandú — Zürich"
    assert message["To"].addresses[0].display_name == "Zoë Lüdenscheidt 😀"
    text, _ = parts(message)
    assert "Hi Zoë Lüdenscheidt 😀," in text


def test_no_server_configured(project: Path, cli) -> None:
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78 and result.err.startswith("newsletter: no SMTP server configured: set SMTP_HOST")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SMTP_PORT": "abc"}, "SMTP_PORT: 'abc' is not a number"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT: 70000 is not a port number"),
        ({"SMTP_SECURITY": "tls13"}, "SMTP_SECURITY: unknown mode 'tls13'"),
        ({"SMTP_TIMEOUT": "soon"}, "SMTP_TIMEOUT: 'soon' is not a number"),
        ({"SMTP_TIMEOUT": "0"}, "SMTP_TIMEOUT: must be a positive number"),
        ({"SMTP_TIMEOUT": "-1"}, "SMTP_TIMEOUT: must be a positive number"),
        ({"SMTP_TIMEOUT": "nan"}, "SMTP_TIMEOUT: must be a positive number"),
        ({"SMTP_TIMEOUT": "1e400"}, "SMTP_TIMEOUT: must be a positive number"),
        ({"SMTP_CA_FILE": "/nonexistent/ca.pem"}, "SMTP_CA_FILE: no such file"),
        ({"SMTP_USERNAME": "u"}, "SMTP_PASSWORD: must be set when SMTP_USERNAME is"),
        ({"NEWSLETTER_FROM": "News Team"}, "environment / .env: NEWSLETTER_FROM: 'News Team' has no address"),
        ({"NEWSLETTER_FROM": "News <news@@example.org>"}, "NEWSLETTER_FROM: invalid address 'news@@example.org'"),
        ({"NEWSLETTER_REPLY_TO": "a@b"}, "NEWSLETTER_REPLY_TO: invalid address 'a@b': bad domain"),
    ],
)
def test_bad_settings_are_named_before_connecting(project, cli, smtp_server, smtp_env, env, expected) -> None:
    server = smtp_server()
    smtp_env({**server.env("none"), **env})
    result = cli("send-test", SAMPLE_EDITION, "--to", "me@example.org")
    assert result.code == 78 and expected in result.err, result.err
    assert not server.handler.received


def test_more_than_ten_addresses_refused(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server()
    smtp_env(server.env("none"))
    args = [a for i in range(11) for a in ("--to", f"r{i}@example.org")]
    result = cli("send-test", SAMPLE_EDITION, *args)
    assert result.code == 1 and "at most 10 addresses" in result.err
    assert not server.handler.received


def test_env_file_is_read_and_real_environment_wins(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server()
    (project / ".env").write_text(f"SMTP_HOST=127.0.0.1\nSMTP_PORT={server.port}\nSMTP_SECURITY=starttls\n")
    smtp_env({"SMTP_SECURITY": "none"})  # the .env alone would demand STARTTLS, which this server lacks
    assert cli("send-test", SAMPLE_EDITION, "--to", "me@example.org").code == 0
    assert len(server.handler.received) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_password_never_appears_in_any_output(project, smtp_server, mechanism: str) -> None:
    """Verbose runs in real processes, successful and failed logins: no form of the password in any output."""
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    server = smtp_server(tls="starttls", auth=True, auth_exclude_mechanism=[other])
    everything = []
    for password in (PASSWORD, "wrong" + PASSWORD):
        env = {**os.environ, **server.env("starttls", SMTP_USERNAME=USERNAME, SMTP_PASSWORD=password)}
        run = subprocess.run(
            [sys.executable, "-m", "newsletter", "send-test", SAMPLE_EDITION, "--to", "me@example.org", "--verbose"],
            cwd=project, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        everything += [run.stdout, run.stderr]
        assert run.returncode == (0 if password == PASSWORD else 78), run.stderr
    text = "\n".join(everything)
    assert f"AUTH {mechanism}" in text and f"AUTH {other}" not in text
    assert "send: 'AUTH <redacted>'" in text and "STARTTLS" in text and "250" in text, "the dialogue is shown"
    assert f"authentication failed for user {USERNAME}" in text
    for secret in (PASSWORD, "wrong" + PASSWORD):
        forms = [secret, base64.b64encode(secret.encode()).decode(),
                 base64.b64encode(f"\0{USERNAME}\0{secret}".encode()).decode()]  # fmt: skip
        for form in forms:
            assert form not in text
    assert server.authenticator.attempts == 2


def test_smtp_capture_command_stores_eml_files(project: Path, cli, smtp_env, tmp_path: Path) -> None:
    port = free_port()
    maildir = tmp_path / "maildir"
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "smtp-capture", "--port", str(port), "--maildir", str(maildir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "listening on 127.0.0.1:" in server.stdout.readline()
        smtp_env({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none"})
        assert cli("send-test", SAMPLE_EDITION, "--to", "me@example.org").code == 0
    finally:
        server.terminate()
        server.wait(10)
    (stored,) = maildir.glob("*.eml")
    assert parse_message(stored.read_bytes())["Subject"].startswith("[TEST] ")


def test_smtp_capture_on_a_busy_port_is_one_clear_line(project: Path, cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("smtp-capture", "--port", port)
    assert result.code == 78
    assert (
        result.err
        == f"newsletter: cannot listen on 127.0.0.1:{port}: Address already in use; choose another with --port\n"
    )


def test_lines_starting_with_a_dot_arrive_intact(project: Path, smtp_server, smtp_env) -> None:
    """Dot-stuffing (RFC 5321 4.5.2): a message that does have such lines is not cut short at a lone dot."""
    import asyncio

    from newsletter.base.config import load_environment, require_smtp_settings
    from newsletter.base.model import Recipient
    from newsletter.delivery.smtp import SMTPTransport
    from newsletter.edition.compose import ComposedMessage

    server = smtp_server()
    smtp_env(server.env("none"))
    data = b"To: a@example.org\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.three\r\nend\r\n"

    async def deliver() -> str:
        async with SMTPTransport(
            require_smtp_settings(load_environment(project)), "newsletter@example.org"
        ) as transport:
            return await transport.send(ComposedMessage(Recipient("a@example.org"), "<x@example.org>", data))

    reply = asyncio.run(deliver())
    assert reply.startswith("250")
    assert server.handler.received[0].data.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")


def test_send_test_accepts_a_display_name_and_keeps_it(project: Path, cli, smtp_server, smtp_env) -> None:
    server = smtp_server()
    smtp_env(server.env("none"))
    result = cli("send-test", SAMPLE_EDITION, "--to", "Ann Example <ann@example.org>")
    assert result.code == 0, result.err
    (received,) = server.handler.received
    assert received.rcpt_tos == ("ann@example.org",)
    to = parse_message(received.data)["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Ann Example", "ann@example.org")
    bad = cli("send-test", SAMPLE_EDITION, "--to", "Ann <ann@example.org")
    assert bad.code == 1 and "expected 'Name <name@example.org>' or name@example.org" in bad.err


def test_send_test_reconnects_after_a_421_and_reports_every_address(project: Path, cli, smtp_server, smtp_env):
    """A 421 at RCPT closes the connection: the address is reported, the next ones are still sent."""
    import asyncio

    class CloseOnce(CaptureHandler):
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address == "second@example.org":
                asyncio.get_running_loop().call_soon(server.transport.close)
                return "421 4.3.0 Closing, try later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

    server = smtp_server(handler=CloseOnce())
    smtp_env(server.env("none"))
    result = cli("send-test", SAMPLE_EDITION, "--to", "first@example.org", "--to", "second@example.org",
                 "--to", "third@example.org")  # fmt: skip
    assert result.code == 1
    assert "sent to first@example.org" in result.out and "sent to third@example.org" in result.out
    assert "newsletter: not sent to second@example.org: " in result.err and "421 4.3.0 Closing" in result.err
    assert [r.rcpt_tos for r in server.handler.received] == [("first@example.org",), ("third@example.org",)]
    assert len({r.peer for r in server.handler.received}) == 2, "a new connection after the 421"
